package metrics_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/simplerpc/simplerpc/metrics"
)

const (
	dashboardPath = "../deploy/grafana/simplerpc.json"
	rulesPath     = "../deploy/prometheus/simplerpc-rules.yml"
	docPath       = "../docs/OPERATIONS.md"
)

var metricName = regexp.MustCompile(`\bsimplerpc_[a-z_]*[a-z]`)

// exported returns the package's metric names, and the suffixed series of
// its histogram.
func exported() map[string]string {
	m := map[string]string{}
	for _, n := range metrics.MetricNames() {
		m[n] = n
		if strings.HasSuffix(n, "_seconds") {
			for _, s := range []string{"_bucket", "_sum", "_count"} {
				m[n+s] = n
			}
		}
	}
	return m
}

// namesIn returns the metrics text names, failing for any the package
// does not export.
func namesIn(t *testing.T, where, text string) []string {
	t.Helper()
	exp := exported()
	var out []string
	for _, n := range metricName.FindAllString(text, -1) {
		base, ok := exp[n]
		if !ok {
			t.Errorf("%s: %s is not a metric of package metrics", where, n)
			continue
		}
		out = append(out, base)
	}
	return out
}

// expressions returns every PromQL expression of a Grafana dashboard:
// the targets' expr and the variables' query.
func expressions(v any, key string, out *[]string) {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			if s, ok := x.(string); ok && (k == "expr" || k == "query" && key == "templating") {
				*out = append(*out, s)
				continue
			}
			next := key
			if k == "templating" {
				next = k
			}
			expressions(x, next, out)
		}
	case []any:
		for _, x := range v {
			expressions(x, key, out)
		}
	}
}

// TestDashboard checks that the Grafana dashboard parses, that each of its
// expressions names a metric and only metrics the package exports, and
// that it shows every metric.
func TestDashboard(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile(dashboardPath)
	if err != nil {
		t.Fatal(err)
	}
	var dash map[string]any
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("%s: %v", dashboardPath, err)
	}
	var exprs []string
	expressions(dash, "", &exprs)
	if len(exprs) < 10 {
		t.Fatalf("%s: %d expressions, want the dashboard's", dashboardPath, len(exprs))
	}
	used := map[string]bool{}
	for _, e := range exprs {
		names := namesIn(t, dashboardPath, e)
		if len(names) == 0 {
			t.Errorf("%s: %q names no simplerpc metric", dashboardPath, e)
		}
		for _, n := range names {
			used[n] = true
		}
	}
	for _, n := range metrics.MetricNames() {
		if !used[n] {
			t.Errorf("%s does not show %s", dashboardPath, n)
		}
	}
}

// TestAlertRules checks the alerting rules with promtool and their
// metrics against the package's.
func TestAlertRules(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile(rulesPath)
	if err != nil {
		t.Fatal(err)
	}
	if len(namesIn(t, rulesPath, string(b))) == 0 {
		t.Fatalf("%s names no metric", rulesPath)
	}
	path, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatalf("promtool is required to check the rules and was not found (Debian: apt-get install prometheus): %v", err)
	}
	if out, err := exec.Command(path, "check", "rules", rulesPath).CombinedOutput(); err != nil {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	}
}

// TestOperationsDoc checks that docs/OPERATIONS.md documents every metric
// and no other.
func TestOperationsDoc(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile(docPath)
	if err != nil {
		t.Fatal(err)
	}
	names := namesIn(t, docPath, string(b))
	for _, n := range metrics.MetricNames() {
		if !slices.Contains(names, n) {
			t.Errorf("%s does not document %s", docPath, n)
		}
	}
}
