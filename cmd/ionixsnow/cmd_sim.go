package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/ionix/ionixsnow/config"
	"github.com/ionix/ionixsnow/servicenow/emulator"
)

func runServiceNowSim(e *env, args []string) int {
	fs := e.flagSet("servicenow-sim", "[--listen ADDR] [flags]")
	cfgPath := fs.String("config", "", "YAML config `file` (only log settings are used)")
	listen := fs.String("listen", "127.0.0.1:8080", "listen `address` (host:port)")
	o := emulator.Options{}
	fs.StringVar(&o.ClientID, "client-id", "ionix", "OAuth client id")
	fs.StringVar(&o.ClientSecret, "client-secret", "ionix", "OAuth client secret")
	fs.StringVar(&o.Username, "user", "ionix", "integration user")
	fs.StringVar(&o.Password, "password", "ionix", "integration user's password")
	fs.StringVar(&o.ImportTable, "import-table", "u_ionix_action_item", "import set staging table")
	fs.StringVar(&o.FieldPrefix, "field-prefix", "u_", "staging field prefix")
	fs.IntVar(&o.NameBodyMaxLength, "field-max-length", 4000, "max length of the name and body staging fields (40 as ServiceNow creates them)")
	if code, ok := parse(fs, args); !ok {
		return code
	}
	cfg, code, ok := e.loadConfig(*cfgPath, config.Needs{})
	if !ok {
		return code
	}
	log := newLogger(cfg.Log, e.stderr)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	sim := emulator.New(o)
	fmt.Fprintf(e.stderr, "ServiceNow emulator on http://%s (client %q, user %q); requests at /sim/requests, incidents at /sim/incidents\n", *listen, o.ClientID, o.Username)
	if err := emulator.ListenAndServe(ctx, *listen, sim, log); err != nil {
		fmt.Fprintf(e.stderr, "ionixsnow servicenow-sim: %v\n", err)
		return exitFailed
	}
	return exitOK
}
