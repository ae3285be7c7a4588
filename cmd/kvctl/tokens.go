package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/shelfdb/shelf/api"
)

// tokenOptions are kvctl's credential flags: --token, or --token-file
// (env SHELF_TOKEN, SHELF_TOKEN_FILE); the token is sent as
// Authorization: Bearer to nodes with auth on.
type tokenOptions struct {
	token, file string
	loaded      string // the token in use, once checked
}

// tokenEnv reads the token flags' defaults from the environment.
func (c *cli) tokenEnv() {
	c.tok.token = c.getenv("SHELF_TOKEN")
	c.tok.file = c.getenv("SHELF_TOKEN_FILE")
}

// tokenFlags adds the token flags to fs.
func (c *cli) tokenFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.tok.token, "token", c.tok.token, "API token")
	fs.StringVar(&c.tok.file, "token-file", c.tok.file, "file holding the API token")
}

// loadToken settles the token: --token wins over --token-file.
func (c *cli) loadToken() error {
	switch {
	case c.tok.token != "":
		c.tok.loaded = api.CleanToken(c.tok.token)
	case c.tok.file != "":
		b, err := os.ReadFile(c.tok.file)
		if err != nil {
			return fmt.Errorf("--token-file: %w", err)
		}
		if c.tok.loaded = api.CleanToken(string(b)); c.tok.loaded == "" {
			return fmt.Errorf("--token-file %s is empty", c.tok.file)
		}
	}
	return nil
}

const tokensLine = "tokens create NAME --role reader|writer|admin [--client ID] | tokens [list] | tokens revoke NAME"

// tokens manages API tokens (admin).
func (c *cli) tokens(ctx context.Context, args []string) error {
	fs := c.flagSet("tokens")
	role := fs.String("role", "", "create: reader, writer or admin")
	client := fs.String("client", "", "create: the client (id or name) a writer token acts as")
	pos, err := c.parse(fs, tokensLine, args, 0, 2)
	if err != nil {
		return err
	}
	sub := "list"
	if len(pos) > 0 {
		sub = pos[0]
	}
	switch sub {
	case "list":
		if len(pos) > 1 || *role != "" || *client != "" {
			return usagef(tokensLine, "tokens list takes no arguments")
		}
		toks, err := c.api().Tokens(ctx)
		if err != nil {
			return err
		}
		return c.emit(orEmpty(toks), func(w io.Writer) {
			row(w, "NAME", "ROLE", "CLIENT", "CREATED")
			for _, t := range toks {
				row(w, t.Name, t.Role, dash(t.Client), c.ago(t.Created))
			}
		})
	case "create":
		if len(pos) != 2 {
			return usagef(tokensLine, "tokens create: want the token's NAME")
		}
		r, err := api.ParseRole(*role)
		if err != nil {
			return usagef(tokensLine, "tokens create: --role: %v", err)
		}
		id := *client
		if id != "" {
			idx, err := c.clientNames(ctx)
			if err != nil {
				return err
			}
			if id, err = idx.resolve(id); err != nil {
				return err
			}
		}
		ct, err := c.api().CreateToken(ctx, api.CreateTokenRequest{Name: pos[1], Role: r, Client: id})
		if err != nil {
			return err
		}
		return c.emit(ct, func(w io.Writer) {
			fmt.Fprintf(w, "%s\n", ct.Token)
			fmt.Fprintf(c.stderr, "kvctl: token %q (%s) created; the secret above is shown only this once: keep it (e.g. in a file for --token-file, mode 0600)\n", ct.Name, ct.Role)
		})
	case "revoke":
		if len(pos) != 2 || *role != "" || *client != "" {
			return usagef(tokensLine, "tokens revoke: want the token's NAME")
		}
		if err := c.api().RevokeToken(ctx, pos[1]); err != nil {
			return err
		}
		return c.emit(map[string]any{"revoked": pos[1]}, func(w io.Writer) {
			fmt.Fprintf(w, "revoked token %s\n", pos[1])
		})
	}
	return usagef(tokensLine, "tokens: unknown subcommand %q", sub)
}
