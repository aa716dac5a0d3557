package commitlog

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/gregor-dev/gregor/internal/vfs"
)

const (
	epochFile     = "leader-epoch-checkpoint"
	logStartFile  = "log-start-offset"
	cleanShutdown = ".clean-shutdown"
	// maxEpochEntries bounds what a checkpoint file may make us allocate.
	maxEpochEntries = 1 << 20
)

// epochEntry says leader epoch Epoch started at StartOffset (KIP-101).
type epochEntry struct {
	Epoch       int32
	StartOffset int64
}

func readEpochs(fs vfs.FS, dir string) ([]epochEntry, error) {
	data, err := fs.ReadFile(filepath.Join(dir, epochFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	line := func() (string, bool) {
		if !sc.Scan() {
			return "", false
		}
		return strings.TrimSpace(sc.Text()), true
	}
	bad := fmt.Errorf("commitlog: malformed %s", epochFile)
	v, ok := line()
	if !ok || v != "0" {
		return nil, bad
	}
	c, ok := line()
	n, err := strconv.Atoi(c)
	if !ok || err != nil || n < 0 || n > maxEpochEntries {
		return nil, bad
	}
	out := make([]epochEntry, 0, min(n, 1024))
	for i := 0; i < n; i++ {
		l, ok := line()
		if !ok {
			return nil, bad
		}
		f := strings.Fields(l)
		if len(f) != 2 {
			return nil, bad
		}
		e, err1 := strconv.ParseInt(f[0], 10, 32)
		o, err2 := strconv.ParseInt(f[1], 10, 64)
		if err1 != nil || err2 != nil || e < 0 || o < 0 {
			return nil, bad
		}
		if k := len(out); k > 0 && (int32(e) <= out[k-1].Epoch || o < out[k-1].StartOffset) {
			return nil, bad
		}
		out = append(out, epochEntry{Epoch: int32(e), StartOffset: o})
	}
	return out, nil
}

func writeEpochs(d disk, dir string, es []epochEntry) error {
	var b []byte
	b = append(b, "0\n"...)
	b = strconv.AppendInt(b, int64(len(es)), 10)
	b = append(b, '\n')
	for _, e := range es {
		b = strconv.AppendInt(b, int64(e.Epoch), 10)
		b = append(b, ' ')
		b = strconv.AppendInt(b, e.StartOffset, 10)
		b = append(b, '\n')
	}
	return d.writeFileAtomic(filepath.Join(dir, epochFile), b)
}

// endOffsetFor implements OffsetForLeaderEpoch (KIP-101, KIP-279) over the
// cache: the largest epoch <= requested and the start offset of the next
// higher epoch, or leo when requested is the latest epoch.
func endOffsetFor(es []epochEntry, requested int32, leo int64) (int32, int64) {
	if requested < 0 || len(es) == 0 {
		return -1, -1
	}
	last := es[len(es)-1]
	if requested == last.Epoch {
		return last.Epoch, leo
	}
	if requested > last.Epoch {
		return -1, -1
	}
	// First entry with a higher epoch.
	i := 0
	for i < len(es) && es[i].Epoch <= requested {
		i++
	}
	if i == 0 {
		// Older than anything we know: Kafka answers with the requested
		// epoch and the start of the earliest one.
		return requested, es[0].StartOffset
	}
	return es[i-1].Epoch, es[i].StartOffset
}

func readLogStart(fs vfs.FS, dir string) (int64, bool) {
	data, err := fs.ReadFile(filepath.Join(dir, logStartFile))
	if err != nil {
		return 0, false
	}
	v, err := strconv.ParseInt(strings.TrimSpace(string(data)), 10, 64)
	if err != nil || v < 0 {
		return 0, false
	}
	return v, true
}

func writeLogStart(d disk, dir string, off int64) error {
	b := strconv.AppendInt(nil, off, 10)
	return d.writeFileAtomic(filepath.Join(dir, logStartFile), append(b, '\n'))
}
