package loadgen

import (
	"context"
	"errors"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shelfdb/shelf/api"
)

func ms(n int) time.Duration { return time.Duration(n) * time.Millisecond }

func TestPercentileNearestRank(t *testing.T) {
	var hundred []time.Duration
	for i := 1; i <= 100; i++ {
		hundred = append(hundred, ms(i))
	}
	var thousand []time.Duration
	for i := 1; i <= 1000; i++ {
		thousand = append(thousand, ms(i))
	}
	cases := []struct {
		name   string
		sorted []time.Duration
		q      float64
		want   time.Duration
	}{
		{"empty", nil, 0.5, 0},
		{"one value is every percentile", []time.Duration{ms(7)}, 0.99, ms(7)},
		{"median of 100", hundred, 0.50, ms(50)},
		{"p99 of 100", hundred, 0.99, ms(99)},
		{"p999 of 100 is the max", hundred, 0.999, ms(100)},
		{"p999 of 1000", thousand, 0.999, ms(999)},
		{"p50 of two is the lower", []time.Duration{ms(1), ms(9)}, 0.5, ms(1)},
		{"q 0 is the min", hundred, 0, ms(1)},
		{"q above 1 is the max", hundred, 1.5, ms(100)},
	}
	for _, c := range cases {
		if got := Percentile(c.sorted, c.q); got != c.want {
			t.Errorf("%s: Percentile(q=%v) = %v, want %v", c.name, c.q, got, c.want)
		}
	}
}

func TestSummarizeSortsAndRates(t *testing.T) {
	lat := []time.Duration{ms(3), ms(1), ms(2), ms(4)}
	s := Summarize(lat, 1, errors.New("boom"), 2*time.Second)
	if s.Ops != 4 || s.Errors != 1 || s.P50 != ms(2) || s.P99 != ms(4) || s.Max != ms(4) {
		t.Fatalf("summary %+v", s)
	}
	if got := s.OpsPerSec(); got != 2 {
		t.Fatalf("OpsPerSec = %v, want 2", got)
	}
	if (Summary{}).OpsPerSec() != 0 {
		t.Fatal("a summary of no time must rate 0, not divide by zero")
	}
}

func TestMedian(t *testing.T) {
	if got := Median([]float64{3, 1, 2}); got != 2 {
		t.Errorf("odd: %v", got)
	}
	xs := []float64{4, 1, 3, 2}
	if got := Median(xs); got != 2.5 {
		t.Errorf("even: %v", got)
	}
	if xs[0] != 4 {
		t.Error("Median changed its input")
	}
	if Median(nil) != 0 {
		t.Error("empty")
	}
}

func TestRunDoesExactlyTotalAndCountsErrors(t *testing.T) {
	var calls atomic.Int64
	perWriter := make([]atomic.Int64, 4)
	s, err := Run(context.Background(), Config{Writers: 4, Total: 103}, func(ctx context.Context, w int) error {
		perWriter[w].Add(1)
		if calls.Add(1)%10 == 0 {
			return errors.New("every tenth fails")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if calls.Load() != 103 || s.Ops+s.Errors != 103 || s.Errors != 10 || s.FirstErr == nil {
		t.Fatalf("calls %d, summary %+v", calls.Load(), s)
	}
	var sum int64
	for w := range perWriter {
		sum += perWriter[w].Load()
	}
	if sum != 103 {
		t.Fatalf("writer numbers outside 0..3: %d of 103 calls counted", sum)
	}
}

func TestRunRejectsEmptyLoads(t *testing.T) {
	for _, cfg := range []Config{{Writers: 0, Total: 1}, {Writers: 1, Total: 0}} {
		if _, err := Run(context.Background(), cfg, func(context.Context, int) error { return nil }); !errors.Is(err, ErrBadConfig) {
			t.Errorf("%+v: err %v, want ErrBadConfig", cfg, err)
		}
	}
}

func TestRunStopsWhenContextEnds(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var calls atomic.Int64
	s, err := Run(ctx, Config{Writers: 2, Total: 1_000_000}, func(context.Context, int) error {
		if calls.Add(1) == 50 {
			cancel()
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) || s.Ops >= 1_000_000 {
		t.Fatalf("err %v, ops %d", err, s.Ops)
	}
}

func TestPacedCallsEveryOperationOnce(t *testing.T) {
	seen := make([]atomic.Int32, 20)
	f, err := Paced(context.Background(), 2000, 20, func(_ context.Context, i int) error {
		seen[i].Add(1)
		if i == 7 {
			return errors.New("seven")
		}
		return nil
	})
	if err != nil || f.Count != 1 || f.First == nil {
		t.Fatalf("failures %+v, err %v", f, err)
	}
	for i := range seen {
		if seen[i].Load() != 1 {
			t.Errorf("op %d ran %d times", i, seen[i].Load())
		}
	}
	if _, err := Paced(context.Background(), 0, 1, nil); !errors.Is(err, ErrBadConfig) {
		t.Errorf("rate 0: %v", err)
	}
}

func TestValueHasExactSizeAndIsAValidRecordValue(t *testing.T) {
	for _, size := range []int{4, 23, 24, 25, 200, 256, 257, 300, 70000} {
		b, err := Value(size)
		if err != nil {
			t.Fatalf("size %d: %v", size, err)
		}
		if len(b) != size {
			t.Errorf("size %d: got %d bytes", size, len(b))
		}
		if err := api.CheckValue(b); err != nil {
			t.Errorf("size %d: not a valid value: %v", size, err)
		}
	}
	if _, err := Value(3); !errors.Is(err, ErrBadConfig) {
		t.Errorf("size 3: %v", err)
	}
}

func TestParseStatus(t *testing.T) {
	status := "Name:\tkvnode\nVmPeak:\t  900 kB\nVmRSS:\t   20480 kB\nRssAnon:\t    8192 kB\nRssFile:\t 12288 kB\n"
	m, err := parseStatus(42, []byte(status))
	if err != nil {
		t.Fatal(err)
	}
	if m.VmRSS != 20480<<10 || m.RssAnon != 8192<<10 || m.PID != 42 {
		t.Fatalf("%+v", m)
	}
	if _, err := parseStatus(1, []byte("Name:\tkthreadd\n")); err == nil {
		t.Error("a status without memory lines must be an error")
	}
	if _, err := parseStatus(1, []byte("VmRSS:\tlots kB\nRssAnon:\t1 kB\n")); err == nil {
		t.Error("a bad number must be an error")
	}
}

func TestProcMemOfThisProcess(t *testing.T) {
	m, err := ProcMem(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if m.VmRSS <= 0 || m.RssAnon <= 0 || m.RssAnon > m.VmRSS {
		t.Fatalf("implausible memory of this test process: %+v", m)
	}
}

func TestParsePIDs(t *testing.T) {
	got, err := ParsePIDs(" 12, 34,,")
	if err != nil || len(got) != 2 || got[0] != 12 || got[1] != 34 {
		t.Fatalf("%v %v", got, err)
	}
	if _, err := ParsePIDs("12,x"); !errors.Is(err, ErrBadConfig) {
		t.Errorf("bad pid: %v", err)
	}
}
