package lint

import (
	"os/exec"
	"strings"
	"testing"
)

// TestLintBinaryHoldsOnlyGregor checks what the shipped binary links: test
// fakes and benchmark peers (franz-go's kfake, the bench/ module) stay out of
// cmd/gregor's dependency graph.
func TestLintBinaryHoldsOnlyGregor(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "github.com/gregor-dev/gregor/cmd/gregor").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	deps := strings.Fields(string(out))
	if len(deps) < 10 {
		t.Fatalf("go list -deps returned %d packages: %q", len(deps), out)
	}
	for _, dep := range deps {
		if strings.Contains(dep, "/kfake") || strings.HasPrefix(dep, "github.com/gregor-dev/gregor/bench") {
			t.Errorf("cmd/gregor links %s, a test or benchmark peer", dep)
		}
	}
}
