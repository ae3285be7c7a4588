package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/shelfdb/shelf/api"
	"github.com/shelfdb/shelf/internal/schema"
)

// The synopses of the record writes that act as the operator client.
const (
	editLine     = "edit TREE ID [--client C] [--ttl D]"
	updateLine   = "update TREE ID JSON|- [--client C]"
	deleteLine   = "delete TREE ID [--client C]"
	checkoutLine = "checkout TREE ID [--ttl D] [--client C]"
	returnLine   = "return TREE ID [--client C]"
	releaseLine  = "release TREE ID [--client C]"
	reviseLine   = "revise TREE ID"
	stateLine    = "state TREE ID N [--client C]"
)

// editTTL is the default expiry of the borrow kvctl edit takes: if kvctl
// is killed (SIGKILL, a crash) the borrow still ends by itself.
const editTTL = time.Hour

// stepTTL is the expiry of the borrow update, delete and release take for
// their one write, for the same reason.
const stepTTL = time.Minute

// commentPrefix starts the lines kvctl edit writes above the value to say
// what was wrong; they are removed before the value is parsed.
const commentPrefix = "// kvctl:"

// writeOutcome is what the record writes print with -o json.
type writeOutcome struct {
	Tree    string  `json:"tree"`
	Key     api.Key `json:"key"`
	Index   uint64  `json:"index,omitempty"` // log index of the write (0: nothing written)
	Changed bool    `json:"changed"`
	State   *int64  `json:"state,omitempty"`
}

// step returns ctx carrying the idempotency key of one write of a
// command that makes several (borrow, update, return): the invocation's
// key (--idempotency-key, or a fresh one) plus the step's name, so that
// each write is applied once and running kvctl again with the same key
// repeats none of them.
func (c *cli) step(ctx context.Context, name string) context.Context {
	if c.idemKey == "" {
		c.idemKey = api.NewIdempotencyKey()
	}
	return api.WithIdempotencyKey(ctx, c.idemKey+"."+name)
}

// target is a record a write command acts on, as read before the write.
type target struct {
	tree string
	rec  api.Record
	me   string // the operator client's id
}

// held reports whether the operator client holds the record's borrow.
func (t *target) held() bool { return t.rec.Borrow != nil && t.rec.Borrow.Client == t.me }

// load resolves the operator client and reads the latest revision of the
// record (or the one given as ID/REV).
func (c *cli) load(ctx context.Context, line, tree, id string, needClient bool) (*target, error) {
	key, err := parseKey(line, id)
	if err != nil {
		return nil, err
	}
	t := &target{tree: tree}
	if needClient {
		if t.me, err = c.operatorID(ctx, line); err != nil {
			return nil, err
		}
	}
	if t.rec, err = c.api().Get(ctx, tree, key); err != nil {
		return nil, err
	}
	return t, nil
}

// borrowed runs do while the operator client holds the record's borrow:
// it borrows the record first unless it holds it already (kvctl
// checkout), and returns the borrow it took on every way out unless do
// reports that its write ended the borrow (delete, release).
func (c *cli) borrowed(ctx context.Context, t *target, ttl time.Duration, do func(ctx context.Context) (ended bool, err error)) (err error) {
	if !t.held() {
		err := c.write(c.step(ctx, "borrow"), func(ctx context.Context) error {
			_, err := c.api().Borrow(ctx, t.tree, t.rec.Key, t.me, ttl)
			return err
		})
		if err != nil {
			return err
		}
		ended := false
		defer func() {
			if !ended {
				err = errors.Join(err, c.giveBack(ctx, t))
			}
		}()
		ended, err = do(ctx)
		return err
	}
	_, err = do(ctx)
	return err
}

// giveBack returns the borrow kvctl took, whatever happened to ctx (an
// interrupt, the timeout): it has its own bound.
func (c *cli) giveBack(ctx context.Context, t *target) error {
	wait := c.deadline.after
	if wait <= 0 {
		wait = defaultTimeout
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), wait)
	defer cancel()
	err := c.write(c.step(rctx, "return"), func(ctx context.Context) error {
		_, err := c.api().Return(ctx, t.tree, t.rec.Key, t.me)
		return err
	})
	if api.CodeOf(err) == api.CodeNotBorrowed {
		// It ended already: forced back, taken over or expired.
		return nil
	}
	if err != nil {
		return fmt.Errorf("the borrow of %s %s could not be returned (kvctl return %s %s): %w", t.tree, t.rec.Key, t.tree, t.rec.Key, err)
	}
	return nil
}

// conform turns JSON text into a record value for t's tree: it checks it
// against the record's schema version (the tree's latest for a record
// without one; no check in a tree without schemas) and returns the CBOR
// bytes and the schema version to write them with.
func (c *cli) conform(ctx context.Context, t *target, src []byte) ([]byte, uint32, error) {
	var v any
	if err := api.DecodeJSON(bytes.NewReader(src), &v); err != nil {
		return nil, 0, api.Errorf(api.CodeInvalid, "the value is not valid JSON: %v", err)
	}
	if _, ok := v.(map[string]any); !ok {
		return nil, 0, api.Errorf(api.CodeInvalid, "the value must be a JSON object (the record's fields)")
	}
	ver := t.rec.Schema
	ss, err := c.api().Schemas(ctx, t.tree)
	if err != nil {
		return nil, 0, err
	}
	if ver == 0 && len(ss) > 0 {
		ver = slices.MaxFunc(ss, func(a, b api.Schema) int { return int(a.Version) - int(b.Version) }).Version
	}
	if ver != 0 {
		i := slices.IndexFunc(ss, func(s api.Schema) bool { return s.Version == ver })
		if i < 0 {
			return nil, 0, api.Errorf(api.CodeUnknownSchema, "tree %q has no schema version %d", t.tree, ver)
		}
		def, err := schema.Decode(ss[i].Definition)
		if err != nil {
			return nil, 0, fmt.Errorf("schema version %d of %s: %w", ver, t.tree, err)
		}
		if v, err = def.Conform(v); err != nil {
			return nil, 0, api.Errorf(api.CodeIncompatible, "the value does not match schema version %d of %s:\n%v", ver, t.tree, err)
		}
	}
	data, err := api.EncodeValue(v)
	if err != nil {
		return nil, 0, api.Errorf(api.CodeInvalid, "the value cannot be stored: %v", err)
	}
	return data, ver, nil
}

func (c *cli) update(ctx context.Context, args []string) error {
	fs := c.flagSet("update")
	c.clientFlag(fs)
	pos, err := c.parse(fs, updateLine, args, 3, 3)
	if err != nil {
		return err
	}
	src := []byte(pos[2])
	if pos[2] == "-" {
		if src, err = io.ReadAll(c.stdin); err != nil {
			return fmt.Errorf("update: read stdin: %w", err)
		}
	}
	t, err := c.load(ctx, updateLine, pos[0], pos[1], true)
	if err != nil {
		return err
	}
	data, ver, err := c.conform(ctx, t, src)
	if err != nil {
		return fmt.Errorf("update %s %s: %w", t.tree, t.rec.Key, err)
	}
	var res api.WriteResult
	err = c.borrowed(ctx, t, stepTTL, func(ctx context.Context) (bool, error) {
		return false, c.write(c.step(ctx, "update"), func(ctx context.Context) error {
			res, err = c.api().Update(ctx, t.tree, t.rec.Key, api.WriteRequest{Client: t.me, Schema: ver, Data: data})
			return err
		})
	})
	if err != nil {
		return err
	}
	out := writeOutcome{Tree: t.tree, Key: res.Key, Index: res.Index, Changed: true}
	return c.emit(out, func(w io.Writer) { fmt.Fprintf(w, "updated %s %s\n", t.tree, res.Key) })
}

func (c *cli) deleteRecord(ctx context.Context, args []string) error {
	fs := c.flagSet("delete")
	c.clientFlag(fs)
	pos, err := c.parse(fs, deleteLine, args, 2, 2)
	if err != nil {
		return err
	}
	t, err := c.load(ctx, deleteLine, pos[0], pos[1], true)
	if err != nil {
		return err
	}
	var res api.WriteResult
	err = c.borrowed(ctx, t, stepTTL, func(ctx context.Context) (bool, error) {
		err := c.write(c.step(ctx, "delete"), func(ctx context.Context) error {
			res, err = c.api().Delete(ctx, t.tree, t.rec.Key, t.me)
			return err
		})
		return err == nil, err
	})
	if err != nil {
		return err
	}
	out := writeOutcome{Tree: t.tree, Key: res.Key, Index: res.Index, Changed: true}
	return c.emit(out, func(w io.Writer) { fmt.Fprintf(w, "deleted %s %s\n", t.tree, res.Key) })
}

func (c *cli) checkout(ctx context.Context, args []string) error {
	fs := c.flagSet("checkout")
	c.clientFlag(fs)
	ttl := fs.Duration("ttl", 0, "the borrow's expiry (Go duration; default: the cluster's, none unless kvnode -borrow-ttl)")
	pos, err := c.parse(fs, checkoutLine, args, 2, 2)
	if err != nil {
		return err
	}
	if *ttl < 0 {
		return usagef(checkoutLine, "checkout: --ttl %s: want a positive duration", *ttl)
	}
	t, err := c.load(ctx, checkoutLine, pos[0], pos[1], true)
	if err != nil {
		return err
	}
	var res api.WriteResult
	err = c.write(c.step(ctx, "borrow"), func(ctx context.Context) error {
		res, err = c.api().Borrow(ctx, t.tree, t.rec.Key, t.me, *ttl)
		return err
	})
	if err != nil {
		return err
	}
	out := writeOutcome{Tree: t.tree, Key: res.Key, Index: res.Index, Changed: true}
	return c.emit(out, func(w io.Writer) {
		msg := fmt.Sprintf("checked out %s %s as %s", t.tree, res.Key, t.me)
		if *ttl > 0 {
			msg += ", expires in " + ttl.String()
		}
		fmt.Fprintln(w, msg+"; kvctl return "+t.tree+" "+res.Key.String()+" gives it back")
	})
}

func (c *cli) returnRecord(ctx context.Context, args []string) error {
	fs := c.flagSet("return")
	c.clientFlag(fs)
	pos, err := c.parse(fs, returnLine, args, 2, 2)
	if err != nil {
		return err
	}
	t, err := c.load(ctx, returnLine, pos[0], pos[1], true)
	if err != nil {
		return err
	}
	var res api.WriteResult
	err = c.write(c.step(ctx, "return"), func(ctx context.Context) error {
		res, err = c.api().Return(ctx, t.tree, t.rec.Key, t.me)
		return err
	})
	if err != nil {
		return err
	}
	out := writeOutcome{Tree: t.tree, Key: res.Key, Index: res.Index, Changed: true}
	return c.emit(out, func(w io.Writer) { fmt.Fprintf(w, "returned %s %s\n", t.tree, res.Key) })
}

func (c *cli) release(ctx context.Context, args []string) error {
	fs := c.flagSet("release")
	c.clientFlag(fs)
	pos, err := c.parse(fs, releaseLine, args, 2, 2)
	if err != nil {
		return err
	}
	t, err := c.load(ctx, releaseLine, pos[0], pos[1], true)
	if err != nil {
		return err
	}
	if t.rec.Released {
		return api.Errorf(api.CodeReleased, "release: %s %s is released already", t.tree, t.rec.Key)
	}
	var res api.WriteResult
	err = c.borrowed(ctx, t, stepTTL, func(ctx context.Context) (bool, error) {
		err := c.write(c.step(ctx, "release"), func(ctx context.Context) error {
			res, err = c.api().Release(ctx, t.tree, t.rec.Key, t.me)
			return err
		})
		return err == nil, err
	})
	if err != nil {
		return err
	}
	out := writeOutcome{Tree: t.tree, Key: res.Key, Index: res.Index, Changed: true}
	return c.emit(out, func(w io.Writer) {
		fmt.Fprintf(w, "released %s %s (kvctl revise %s %d makes the next revision)\n", t.tree, res.Key, t.tree, res.Key.ID)
	})
}

func (c *cli) revise(ctx context.Context, args []string) error {
	pos, err := c.parse(c.flagSet("revise"), reviseLine, args, 2, 2)
	if err != nil {
		return err
	}
	t, err := c.load(ctx, reviseLine, pos[0], pos[1], false)
	if err != nil {
		return err
	}
	var res api.WriteResult
	err = c.write(c.step(ctx, "revise"), func(ctx context.Context) error {
		// As operator: the new draft is not borrowed by anyone.
		res, err = c.api().Revise(ctx, t.tree, t.rec.Key, "")
		return err
	})
	if err != nil {
		return err
	}
	out := writeOutcome{Tree: t.tree, Key: res.Key, Index: res.Index, Changed: true}
	return c.emit(out, func(w io.Writer) { fmt.Fprintf(w, "%s %s is a new draft of %s\n", t.tree, res.Key, t.rec.Key) })
}

func (c *cli) state(ctx context.Context, args []string) error {
	fs := c.flagSet("state")
	c.clientFlag(fs)
	pos, err := c.parse(fs, stateLine, args, 3, 3)
	if err != nil {
		return err
	}
	n, err := strconv.ParseInt(pos[2], 10, 64)
	if err != nil {
		return usagef(stateLine, "state: %q is not an integer", pos[2])
	}
	t, err := c.load(ctx, stateLine, pos[0], pos[1], true)
	if err != nil {
		return err
	}
	var res api.WriteResult
	err = c.write(c.step(ctx, "state"), func(ctx context.Context) error {
		res, err = c.api().SetState(ctx, t.tree, t.rec.Key, t.me, n)
		return err
	})
	if err != nil {
		return err
	}
	out := writeOutcome{Tree: t.tree, Key: res.Key, Index: res.Index, Changed: t.rec.State != n, State: &n}
	return c.emit(out, func(w io.Writer) { fmt.Fprintf(w, "%s %s state %d\n", t.tree, res.Key, n) })
}

// edit is kvctl edit: check out, edit the JSON in $VISUAL, $EDITOR or
// vi until it is valid, check in. Only its network steps are bounded by
// --timeout (edit is in unboundedCommands): the editor takes its time.
func (c *cli) edit(ctx context.Context, args []string) (err error) {
	fs := c.flagSet("edit")
	c.clientFlag(fs)
	ttl := fs.Duration("ttl", editTTL, "expiry of the borrow held while editing (it is returned when kvctl edit ends; the expiry covers a kvctl that is killed)")
	pos, err := c.parse(fs, editLine, args, 2, 2)
	if err != nil {
		return err
	}
	if *ttl <= 0 {
		return usagef(editLine, "edit: --ttl %s: want a positive duration", *ttl)
	}
	var t *target
	if err := c.netStep(ctx, "the record", func(ctx context.Context) (err error) {
		t, err = c.load(ctx, editLine, pos[0], pos[1], true)
		return err
	}); err != nil {
		return err
	}
	if t.rec.Released {
		return api.Errorf(api.CodeReleased, "edit: %s %s is released and cannot change (kvctl revise %s %d makes a new draft)", t.tree, t.rec.Key, t.tree, t.rec.Key.ID)
	}
	if !t.held() {
		if err := c.netStep(ctx, "the borrow", func(ctx context.Context) error {
			return c.write(c.step(ctx, "borrow"), func(ctx context.Context) error {
				_, err := c.api().Borrow(ctx, t.tree, t.rec.Key, t.me, *ttl)
				return err
			})
		}); err != nil {
			return err
		}
		// The borrow goes back on every way out: abort, editor failure,
		// SIGINT outside the editor, SIGTERM, SIGHUP, a refused update,
		// a timeout.
		defer func() { err = errors.Join(err, c.giveBack(ctx, t)) }()
		// Read again: the value may have changed before the borrow.
		if err := c.netStep(ctx, "the record", func(ctx context.Context) (err error) {
			t.rec, err = c.api().Get(ctx, t.tree, t.rec.Key)
			return err
		}); err != nil {
			return err
		}
	}
	t.rec.FillValue()
	if t.rec.ValueError != "" {
		return fmt.Errorf("edit %s %s: the value has no JSON view: %s", t.tree, t.rec.Key, t.rec.ValueError)
	}
	orig, err := json.MarshalIndent(t.rec.Value, "", "  ")
	if err != nil {
		return fmt.Errorf("edit %s %s: %w", t.tree, t.rec.Key, err)
	}
	orig = append(orig, '\n')
	dir, err := os.MkdirTemp("", "kvctl-edit-")
	if err != nil {
		return fmt.Errorf("edit: %w", err)
	}
	keep := false
	defer func() {
		if !keep {
			os.RemoveAll(dir)
		}
	}()
	file := filepath.Join(dir, fmt.Sprintf("%s-%d-%d.json", safeName(t.tree), t.rec.Key.ID, t.rec.Key.Rev))
	written := orig
	for {
		if err := os.WriteFile(file, written, 0o600); err != nil {
			return fmt.Errorf("edit: %w", err)
		}
		if err := c.runEditor(ctx, file); err != nil {
			return fmt.Errorf("edit %s %s: nothing changed: %w", t.tree, t.rec.Key, err)
		}
		got, err := os.ReadFile(file)
		if err != nil {
			return fmt.Errorf("edit: %w", err)
		}
		text := stripComments(got)
		switch {
		case len(bytes.TrimSpace(text)) == 0:
			fmt.Fprintf(c.stderr, "kvctl: edit %s %s aborted (empty file); nothing changed\n", t.tree, t.rec.Key)
			return c.emit(writeOutcome{Tree: t.tree, Key: t.rec.Key}, func(io.Writer) {})
		case bytes.Equal(bytes.TrimSpace(text), bytes.TrimSpace(orig)):
			fmt.Fprintf(c.stderr, "kvctl: edit %s %s: no change\n", t.tree, t.rec.Key)
			return c.emit(writeOutcome{Tree: t.tree, Key: t.rec.Key}, func(io.Writer) {})
		case !bytes.Equal(written, orig) && bytes.Equal(got, written):
			fmt.Fprintf(c.stderr, "kvctl: edit %s %s aborted (saved unchanged after an error); nothing changed\n", t.tree, t.rec.Key)
			return c.emit(writeOutcome{Tree: t.tree, Key: t.rec.Key}, func(io.Writer) {})
		}
		var data []byte
		var ver uint32
		verr := c.netStep(ctx, "the tree's schemas", func(ctx context.Context) (err error) {
			data, ver, err = c.conform(ctx, t, text)
			return err
		})
		var ae *api.Error
		if verr != nil && errors.As(verr, &ae) && (ae.Code == api.CodeInvalid || ae.Code == api.CodeIncompatible) {
			written = withComments(verr.Error(), text)
			continue
		}
		if verr != nil {
			return verr
		}
		if bytes.Equal(data, t.rec.Data) {
			fmt.Fprintf(c.stderr, "kvctl: edit %s %s: no change\n", t.tree, t.rec.Key)
			return c.emit(writeOutcome{Tree: t.tree, Key: t.rec.Key}, func(io.Writer) {})
		}
		var res api.WriteResult
		err = c.netStep(ctx, "the update", func(ctx context.Context) error {
			return c.write(c.step(ctx, "update"), func(ctx context.Context) error {
				res, err = c.api().Update(ctx, t.tree, t.rec.Key, api.WriteRequest{Client: t.me, Schema: ver, Data: data})
				return err
			})
		})
		if err != nil {
			keep = true
			if werr := os.WriteFile(file, text, 0o600); werr == nil {
				return fmt.Errorf("%w (the edited value is kept in %s)", err, file)
			}
			return err
		}
		out := writeOutcome{Tree: t.tree, Key: res.Key, Index: res.Index, Changed: true}
		return c.emit(out, func(w io.Writer) { fmt.Fprintf(w, "updated %s %s\n", t.tree, res.Key) })
	}
}

// netStep runs one network step of edit bounded by --timeout; a step
// that runs out says so (a timeout error, exit 5).
func (c *cli) netStep(ctx context.Context, what string, do func(ctx context.Context) error) error {
	sctx, cancel := c.bound(ctx, 0, what)
	defer cancel()
	err := do(sctx)
	if err != nil && sctx.Err() != nil && ctx.Err() == nil {
		return context.Cause(sctx)
	}
	return err
}

// editor returns the command line of the user's editor: $VISUAL, then
// $EDITOR, then vi (as git does).
func (c *cli) editor() string {
	for _, k := range []string{"VISUAL", "EDITOR"} {
		if e := strings.TrimSpace(c.getenv(k)); e != "" {
			return e
		}
	}
	return "vi"
}

// runEditor runs the editor on file through sh, so that the variable may
// hold arguments ("code --wait"). While it runs, Ctrl-C is the editor's
// (see main); ctx ending (SIGTERM, SIGHUP) stops it.
func (c *cli) runEditor(ctx context.Context, file string) error {
	ed := c.editor()
	// exec: the shell becomes the editor, so that stopping it stops the
	// editor, not only the shell.
	cmd := exec.CommandContext(ctx, "sh", "-c", "exec "+ed+` "$@"`, ed, file)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	// SIGTERM first: an editor leaves the terminal as it found it; killed
	// if it has not gone after WaitDelay.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 5 * time.Second
	c.inEditor.Store(true)
	defer c.inEditor.Store(false)
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		return fmt.Errorf("editor %q failed: %w", ed, err)
	}
	return nil
}

// stripComments removes the lines kvctl edit added (commentPrefix).
func stripComments(b []byte) []byte {
	var out []byte
	for _, l := range bytes.SplitAfter(b, []byte("\n")) {
		if bytes.HasPrefix(bytes.TrimSpace(l), []byte(commentPrefix)) {
			continue
		}
		out = append(out, l...)
	}
	return out
}

// withComments puts the error above the value as commentPrefix lines.
func withComments(msg string, text []byte) []byte {
	var b bytes.Buffer
	for _, l := range strings.Split(msg, "\n") {
		fmt.Fprintf(&b, "%s %s\n", commentPrefix, l)
	}
	fmt.Fprintf(&b, "%s fix the value below and save; save it unchanged or empty to abort\n", commentPrefix)
	b.Write(text)
	return b.Bytes()
}

// safeName makes a tree name fit in a file name.
func safeName(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '/' || r == os.PathSeparator || r < ' ' {
			return '_'
		}
		return r
	}, s)
}
