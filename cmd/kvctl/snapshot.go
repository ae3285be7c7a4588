package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

func (c *cli) snapshot(ctx context.Context, args []string) error {
	const line = "snapshot save FILE"
	pos, err := c.parse(c.flagSet("snapshot"), line, args, 2, 2)
	if err != nil {
		return err
	}
	if pos[0] != "save" {
		return usagef(line, "snapshot: unknown subcommand %q", pos[0])
	}
	file := pos[1]
	if file == "-" {
		_, err := c.api().Snapshot(ctx, c.stdout)
		return err
	}
	n, err := saveFile(file, func(w io.Writer) (int64, error) { return c.api().Snapshot(ctx, w) })
	if err != nil {
		return err
	}
	return c.emit(map[string]any{"file": file, "bytes": n}, func(w io.Writer) {
		fmt.Fprintf(w, "saved snapshot to %s (%d bytes)\n", file, n)
	})
}

// saveFile writes file through a temporary file in the same directory, so
// an interrupted transfer never leaves a truncated snapshot under its name.
func saveFile(file string, write func(io.Writer) (int64, error)) (int64, error) {
	f, err := os.CreateTemp(filepath.Dir(file), "."+filepath.Base(file)+".tmp*")
	if err != nil {
		return 0, err
	}
	n, err := write(f)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), file)
	}
	if err != nil {
		os.Remove(f.Name())
		return 0, err
	}
	return n, nil
}
