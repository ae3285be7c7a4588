package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/shelfdb/shelf/api"
)

// The operator client: the commands that need a borrow (edit, update,
// delete, checkout, return, release, state) act as one registered
// client. --client (env SHELF_CLIENT) names it, by name or id; without
// it kvctl registers a client named kvctl@HOSTNAME once per cluster and
// remembers its id in $XDG_CONFIG_HOME/shelf/kvctl.json (default
// ~/.config/shelf/kvctl.json), keyed by cluster id.

// operatorConfig is the file kvctl remembers its client ids in.
type operatorConfig struct {
	// Clients maps a cluster id to the id of the client kvctl registered
	// in that cluster.
	Clients map[string]string `json:"clients"`
}

// clientFlag adds --client to a command's flags.
func (c *cli) clientFlag(fs *flag.FlagSet) {
	if c.operator == "" {
		c.operator = c.getenv("SHELF_CLIENT")
	}
	fs.StringVar(&c.operator, "client", c.operator, "act as this registered client (name or id; default: kvctl@HOSTNAME, registered once per cluster)")
}

// configPath is the file of operatorConfig.
func (c *cli) configPath() (string, error) {
	dir := c.getenv("XDG_CONFIG_HOME")
	if dir == "" {
		home := c.getenv("HOME")
		if home == "" {
			return "", errors.New("neither XDG_CONFIG_HOME nor HOME is set: give --client")
		}
		dir = filepath.Join(home, ".config")
	}
	return filepath.Join(dir, "shelf", "kvctl.json"), nil
}

// operatorID returns the id of the client kvctl acts as (see above),
// registering kvctl@HOSTNAME if this cluster has none remembered.
func (c *cli) operatorID(ctx context.Context, line string) (string, error) {
	names, err := c.clientNames(ctx)
	if err != nil {
		return "", err
	}
	if c.operator != "" {
		id, err := names.resolve(c.operator)
		if err != nil {
			return "", usagef(line, "--client: %v", err)
		}
		if _, ok := names[id]; !ok {
			return "", api.Errorf(api.CodeUnknownClient, "--client %s: no such registered client (kvctl clients lists them)", c.operator)
		}
		return id, nil
	}
	st, err := c.api().Status(ctx)
	if err != nil {
		return "", err
	}
	path, err := c.configPath()
	if err != nil {
		return "", err
	}
	var conf operatorConfig
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return "", fmt.Errorf("read the kvctl client file: %w", err)
	default:
		if err := json.Unmarshal(b, &conf); err != nil {
			return "", fmt.Errorf("the kvctl client file %s is damaged (remove it to register anew): %w", path, err)
		}
	}
	if id := conf.Clients[st.ClusterID]; id != "" {
		if _, ok := names[id]; ok {
			return id, nil
		}
		// Removed by an operator (clients remove): register anew.
	}
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "localhost"
	}
	ci, err := c.api().RegisterClient(ctx, "kvctl@"+host)
	if err != nil {
		if api.CodeOf(err) == api.CodeForbidden {
			// A writer token acts as one client: name it.
			return "", fmt.Errorf("register kvctl's client (with a writer token, give --client, the client the token acts as): %w", err)
		}
		return "", fmt.Errorf("register kvctl's client: %w", err)
	}
	if conf.Clients == nil {
		conf.Clients = map[string]string{}
	}
	conf.Clients[st.ClusterID] = ci.ID
	if err := saveConfig(path, conf); err != nil {
		return "", err
	}
	fmt.Fprintf(c.stderr, "kvctl: registered client %s (%s) for cluster %s, remembered in %s\n", ci.Name, ci.ID, st.ClusterID, path)
	return ci.ID, nil
}

// saveConfig writes the client file through a temporary file.
func saveConfig(path string, conf operatorConfig) error {
	b, err := json.MarshalIndent(conf, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("save the kvctl client file: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".kvctl-*.json")
	if err != nil {
		return fmt.Errorf("save the kvctl client file: %w", err)
	}
	_, err = tmp.Write(append(b, '\n'))
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("save the kvctl client file: %w", err)
	}
	return nil
}
