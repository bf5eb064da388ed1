package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/ionix/ionixsnow/secrets"
)

const keysUsage = `Usage: ionixsnow keys <subcommand> [flags]

The keyset that seals tenant secrets at rest (secrets.keyset_file). The file is the root
secret of every tenant's credentials: keep it mode 0600 (a Kubernetes Secret in
production) and back it up; without it no tenant's secrets can be read.

Subcommands:
  init --out F            create a new keyset file (refuses to overwrite one)
  rotate [--config FILE]  add a new primary key to secrets.keyset_file (the old keys still
                          decrypt) and re-encrypt every tenant's secrets with it

Run 'ionixsnow keys <subcommand> -h' for its flags.
`

func runKeys(e *env, args []string) int {
	if len(args) == 0 {
		fmt.Fprint(e.stderr, "ionixsnow keys: a subcommand is required\n\n"+keysUsage)
		return exitUsage
	}
	switch args[0] {
	case "init":
		return runKeysInit(e, args[1:])
	case "rotate":
		return runKeysRotate(e, args[1:])
	case "help", "-h", "--help":
		fmt.Fprint(e.stdout, keysUsage)
		return exitOK
	}
	fmt.Fprintf(e.stderr, "ionixsnow keys: unknown subcommand %q\n\n%s", args[0], keysUsage)
	return exitUsage
}

func runKeysInit(e *env, args []string) int {
	fs := e.flagSet("keys init", "--out FILE [--keep]")
	out := fs.String("out", "", "the keyset `file` to create (mode 0600); name it in secrets.keyset_file")
	keep := fs.Bool("keep", false, "when the file exists and is a keyset, keep it and exit 0 (an init container run at every start)")
	if code, ok := parse(fs, args); !ok {
		return code
	}
	if *out == "" {
		fmt.Fprintln(e.stderr, "ionixsnow keys init: --out is required")
		fs.Usage()
		return exitUsage
	}
	if *keep {
		if _, err := os.Stat(*out); err == nil {
			k, err := secrets.Load(*out)
			if err != nil {
				fmt.Fprintf(e.stderr, "ionixsnow keys init: --keep: %s exists but is no usable keyset: %v\n", *out, err)
				return exitUsage
			}
			fmt.Fprintf(e.stdout, "kept keyset %s (primary key %d)\n", *out, k.PrimaryKeyID())
			return exitOK
		}
	}
	k, err := secrets.Init(*out)
	if err != nil {
		fmt.Fprintf(e.stderr, "ionixsnow keys init: %v\n", err)
		if errors.Is(err, secrets.ErrKeysetExists) {
			return exitUsage
		}
		return exitFailed
	}
	fmt.Fprintf(e.stdout, "created keyset %s (primary key %d); set secrets.keyset_file (or IONIXSNOW_SECRETS_KEYSET_FILE) to it, keep it mode 0600 and back it up\n",
		*out, k.PrimaryKeyID())
	return exitOK
}

func runKeysRotate(e *env, args []string) int {
	fs := e.flagSet("keys rotate", "[--config FILE]")
	cfgPath := fs.String("config", "", "the deployment's YAML config `file` (NATS, secrets.keyset_file)")
	if code, ok := parse(fs, args); !ok {
		return code
	}
	cfg, code, ok := e.loadDeploymentConfig("keys rotate", *cfgPath)
	if !ok {
		return code
	}
	if cfg.Secrets.KeysetFile == "" {
		fmt.Fprintln(e.stderr, "ionixsnow keys rotate: secrets.keyset_file is not set (or IONIXSNOW_SECRETS_KEYSET_FILE)")
		return exitUsage
	}
	// One rotation at a time: two would each add a key and reseal with it, and the
	// keyset file written last would lack the other's key.
	lock := cfg.Secrets.KeysetFile + ".lock"
	lf, err := os.OpenFile(lock, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		fmt.Fprintf(e.stderr, "ionixsnow keys rotate: another rotation holds %s (if none runs, one was interrupted: remove the file): %v\n", lock, err)
		return exitFailed
	}
	_ = lf.Close()
	defer os.Remove(lock)
	ctx, stop := dlqSignalContext()
	defer stop()
	s, code, ok := e.tenantOpen(ctx, "keys rotate", *cfgPath, true)
	if !ok {
		return code
	}
	defer s.conn.Close()
	rotated, err := s.keys.Rotate()
	if err != nil {
		fmt.Fprintf(e.stderr, "ionixsnow keys rotate: %v\n", err)
		return exitFailed
	}
	// The file first: if re-encrypting stops half way, it holds every key that
	// sealed a tenant's secrets (old and new), so nothing becomes unreadable.
	if err := rotated.Write(cfg.Secrets.KeysetFile); err != nil {
		fmt.Fprintf(e.stderr, "ionixsnow keys rotate: %v\n", err)
		return exitFailed
	}
	n, err := s.store.Reseal(ctx, rotated)
	if err != nil {
		fmt.Fprintf(e.stderr, "ionixsnow keys rotate: the keyset has the new primary key %d and %d tenants were re-encrypted with it; these were not:\n%s\n"+
			"they still open with the older keys the file keeps; fix or delete them (`ionixsnow tenant put`/`delete`)\n", rotated.PrimaryKeyID(), n, indent(err.Error()))
		return exitFailed
	}
	fmt.Fprintf(e.stdout, "new primary key %d in %s (%d keys, the older ones decrypt only); re-encrypted the secrets of %d tenant%s\n",
		rotated.PrimaryKeyID(), cfg.Secrets.KeysetFile, len(rotated.KeyIDs()), n, dlqPlural(n))
	fmt.Fprintln(e.stdout, "give every consume process the new keyset file: one that still holds the old one reads its file again when a tenant's secrets do not open, and retries every 10 s")
	return exitOK
}
