// Package metricstest scrapes a node's GET /metrics and parses it with the
// Prometheus text parser, for tests.
package metricstest

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Families are the parsed metric families of one scrape, by name.
type Families map[string]*dto.MetricFamily

// Scrape fetches http://addr/metrics (addr is host:port, or a URL
// without the path) and parses it as the Prometheus text format with
// classic metric names. A status other than 200, a content type other
// than the text format, or text the parser refuses is an error.
func Scrape(ctx context.Context, hc *http.Client, addr string) (Families, error) {
	if hc == nil {
		hc = http.DefaultClient
	}
	u := strings.TrimRight(addr, "/") + "/metrics"
	if !strings.Contains(addr, "://") {
		u = "http://" + u
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", u, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("scrape %s: status %s", u, resp.Status)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		return nil, fmt.Errorf("scrape %s: content type %q, want the text format", u, ct)
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: parse: %w", u, err)
	}
	return fams, nil
}

// Value returns the value of the sample of family name whose labels
// include labels (name, value pairs): a gauge's or counter's value, an
// untyped one's, or a histogram's or summary's sample count. ok is false
// when there is no such sample.
func (f Families) Value(name string, labels ...string) (v float64, ok bool) {
	m := f.sample(name, labels...)
	if m == nil {
		return 0, false
	}
	switch {
	case m.Gauge != nil:
		return m.Gauge.GetValue(), true
	case m.Counter != nil:
		return m.Counter.GetValue(), true
	case m.Untyped != nil:
		return m.Untyped.GetValue(), true
	case m.Histogram != nil:
		return float64(m.Histogram.GetSampleCount()), true
	case m.Summary != nil:
		return float64(m.Summary.GetSampleCount()), true
	}
	return 0, false
}

// Type returns the type of family name, and whether it exists.
func (f Families) Type(name string) (dto.MetricType, bool) {
	fam, ok := f[name]
	if !ok {
		return 0, false
	}
	return fam.GetType(), true
}

// WithPrefix lists the family names that start with prefix, sorted.
func (f Families) WithPrefix(prefix string) []string {
	var out []string
	for name := range f {
		if strings.HasPrefix(name, prefix) {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

func (f Families) sample(name string, labels ...string) *dto.Metric {
	fam, ok := f[name]
	if !ok {
		return nil
	}
next:
	for _, m := range fam.GetMetric() {
		for i := 0; i+1 < len(labels); i += 2 {
			found := false
			for _, lp := range m.GetLabel() {
				if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
					found = true
					break
				}
			}
			if !found {
				continue next
			}
		}
		return m
	}
	return nil
}
