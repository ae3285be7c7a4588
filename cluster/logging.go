package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"log"
	"log/slog"
	"sort"
	"strings"
	"sync"

	"github.com/hashicorp/go-hclog"
)

// newHCLogger returns an hclog.Logger for raft that writes into slog.
// Raft's info messages are routine (elections, snapshots) and go to slog
// at debug level; warnings and errors keep their level. Unless debug is
// enabled, hclog itself filters at warn so nothing is formatted in vain.
func newHCLogger(l *slog.Logger, name string) hclog.Logger {
	level := hclog.Warn
	if l.Enabled(context.Background(), slog.LevelDebug) {
		level = hclog.Debug
	}
	return hclog.New(&hclog.LoggerOptions{
		Name:        name,
		Level:       level,
		Output:      &hclogWriter{log: l},
		JSONFormat:  true,
		DisableTime: true,
	})
}

// hclogWriter receives hclog's JSON lines and logs them with slog.
type hclogWriter struct {
	log *slog.Logger
	mu  sync.Mutex
	buf []byte
}

// Write implements io.Writer: one log record per complete line.
func (w *hclogWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		w.line(w.buf[:i])
		w.buf = w.buf[i+1:]
	}
	if len(w.buf) == 0 {
		w.buf = nil
	}
	return len(p), nil
}

func (w *hclogWriter) line(b []byte) {
	if len(bytes.TrimSpace(b)) == 0 {
		return
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		w.log.Warn(string(b))
		return
	}
	level := slog.LevelDebug
	switch m["@level"] {
	case "warn":
		level = slog.LevelWarn
	case "error":
		level = slog.LevelError
	}
	msg, _ := m["@message"].(string)
	attrs := make([]slog.Attr, 0, len(m))
	if mod, ok := m["@module"].(string); ok {
		attrs = append(attrs, slog.String("module", mod))
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		if !strings.HasPrefix(k, "@") {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		attrs = append(attrs, slog.Any(k, m[k]))
	}
	w.log.LogAttrs(context.Background(), level, msg, attrs...)
}

// newStdLogger returns a *log.Logger for memberlist that writes into slog.
// Memberlist prefixes its messages with "[LEVEL] memberlist: "; its info
// messages (every failed probe of a down node) go to debug level: the node
// logs membership changes itself.
func newStdLogger(l *slog.Logger) *log.Logger {
	return log.New(&stdLogWriter{log: l}, "", 0)
}

type stdLogWriter struct{ log *slog.Logger }

// Write implements io.Writer: one log record per line.
func (w *stdLogWriter) Write(p []byte) (int, error) {
	for _, line := range strings.Split(strings.TrimRight(string(p), "\n"), "\n") {
		level := slog.LevelDebug
		switch {
		case strings.HasPrefix(line, "[ERR]"):
			level = slog.LevelError
		case strings.HasPrefix(line, "[WARN]"):
			level = slog.LevelWarn
		}
		if i := strings.Index(line, "] "); i >= 0 && strings.HasPrefix(line, "[") {
			line = line[i+2:]
		}
		line = strings.TrimPrefix(line, "memberlist: ")
		w.log.Log(context.Background(), level, line, "module", "memberlist")
	}
	return len(p), nil
}
