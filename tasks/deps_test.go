package tasks_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDependencyRules keeps the layers apart: policy is pure (the standard
// library only), and tasks, which hosts import, pulls in neither the
// database layer's driver, nor the mail provider, nor the admin server.
func TestDependencyRules(t *testing.T) {
	deps := func(pkg string) []string {
		out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", pkg).Output()
		if err != nil {
			t.Fatalf("go list %s: %v", pkg, err)
		}
		return strings.Fields(string(out))
	}
	for _, d := range deps("github.com/dormancy/dormancy/policy") {
		if d != "github.com/dormancy/dormancy/policy" {
			t.Errorf("policy imports %s; it must stay on the standard library", d)
		}
	}
	for _, d := range deps("github.com/dormancy/dormancy/tasks") {
		for _, banned := range []string{"github.com/uptrace/bun", "github.com/resend/", "github.com/dormancy/dormancy/admin",
			"github.com/dormancy/dormancy/postgres", "github.com/dormancy/dormancy/worker", "github.com/dormancy/dormancy/mail"} {
			if strings.HasPrefix(d, banned) {
				t.Errorf("tasks imports %s", d)
			}
		}
	}
}
