package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// A record stored before the depth limit, too deep for the decoder, does
// not fail the listing of its tree: it is listed with its error.
func TestListRecordWithoutJSONView(t *testing.T) {
	f := newFake(t, 3)
	f.records[1].Data = append(append([]byte{0xa1, 0x61, 'a'}, bytes.Repeat([]byte{0x81}, 2000)...), 0)
	out, errs, code := kv(t, f, "", "list", "parts")
	if code != 0 {
		t.Fatalf("list: exit %d: %s", code, errs)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 4 || !strings.Contains(lines[1], `"R1"`) || !strings.Contains(lines[2], "(no JSON view: ") || !strings.Contains(lines[3], `"R3"`) {
		t.Fatalf("list table:\n%s", out)
	}
	out, errs, code = kv(t, f, "", "-o", "json", "list", "parts")
	var p struct {
		Records []struct {
			Value      any    `json:"value"`
			ValueError string `json:"value_error"`
		} `json:"records"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &p) != nil || len(p.Records) != 3 {
		t.Fatalf("list json: exit %d: %s %s", code, out, errs)
	}
	if p.Records[1].Value != nil || p.Records[1].ValueError == "" || p.Records[0].ValueError != "" {
		t.Fatalf("list json: %+v", p.Records)
	}
	out, errs, code = kv(t, f, "", "get", "parts", "2")
	if code != 0 || !strings.Contains(out, "(no JSON view: ") {
		t.Fatalf("get: exit %d: %s %s", code, out, errs)
	}
}
