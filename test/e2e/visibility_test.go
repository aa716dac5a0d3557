package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// describedBroker is a broker as `gregor cluster describe --json` prints it.
type describedBroker struct {
	NodeID int32 `json:"node_id"`
	Fenced bool  `json:"fenced"`
}

// describeWithCLI runs the real binary's `gregor cluster describe --json`
// against addr.
func describeWithCLI(addr string) (controller int32, brokers []describedBroker, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, gregorBin, "-b", addr, "--timeout", "5s", "--json", "cluster", "describe").Output()
	if err != nil {
		return 0, nil, fmt.Errorf("gregor cluster describe: %w", err)
	}
	var s struct {
		Controller int32             `json:"controller"`
		Brokers    []describedBroker `json:"brokers"`
	}
	if err := json.Unmarshal(out, &s); err != nil {
		return 0, nil, fmt.Errorf("gregor cluster describe: %w: %s", err, out)
	}
	return s.Controller, s.Brokers, nil
}

// scrape reads one unlabelled sample from a process's /metrics.
func scrape(httpAddr, name string) (float64, error) {
	hc := &http.Client{Timeout: 3 * time.Second}
	resp, err := hc.Get("http://" + httpAddr + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			return strconv.ParseFloat(v, 64)
		}
	}
	return 0, fmt.Errorf("%s: no sample %s", httpAddr, name)
}

// checkFencedVisible checks, once broker fenced is fenced, that `gregor
// cluster describe` on addr lists it as fenced (and the others as not) and
// names controller, and that the controller's /metrics counts one fenced
// broker.
func checkFencedVisible(t *testing.T, addr string, fenced, controller int32, controllerHTTP string) {
	t.Helper()
	eventually(t, 10*time.Second, "the fenced broker shown by cluster describe and the metrics", func() error {
		ctrl, brokers, err := describeWithCLI(addr)
		if err != nil {
			return err
		}
		if ctrl != controller || len(brokers) != 3 {
			return fmt.Errorf("controller %d brokers %+v, want controller %d and three brokers", ctrl, brokers, controller)
		}
		for _, b := range brokers {
			if b.Fenced != (b.NodeID == fenced) {
				return fmt.Errorf("broker %d fenced %v (the fenced one is %d)", b.NodeID, b.Fenced, fenced)
			}
		}
		if v, err := scrape(controllerHTTP, "gregor_controller_fenced_brokers"); err != nil || v != 1 {
			return fmt.Errorf("gregor_controller_fenced_brokers %v (%v), want 1", v, err)
		}
		return nil
	})
}
