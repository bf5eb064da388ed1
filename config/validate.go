package config

import (
	"fmt"
	"math"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/ionix/ionixsnow/remote"
)

// Limits checked by Validate.
const (
	MaxConcurrency        = 256
	MaxProcessConcurrency = 4096
	MinCapWindow          = time.Second
	MinMaxBackoff         = time.Second
	MinAckWait            = time.Second
	MinDrainTimeout       = time.Second
	MinPollInterval       = 10 * time.Second
	MinUrgencyThreshold   = 1.0
	MaxUrgencyThreshold   = 10.0
	MinEmbeddedTokenLen   = 16
	maxJetStreamName      = 255
)

// LogLevels and LogFormats are the accepted values of log.level and log.format.
var (
	LogLevels  = []string{"trace", "debug", "info", "warn", "error"}
	LogFormats = []string{"auto", "json", "console"}
)

// Validate checks the configuration for consistency, whatever the command,
// and returns every problem at once as a Problems error, or nil.
func (c Config) Validate() error { return c.scrub(c.problems(Needs{})).err() }

// ValidateFor is Validate plus the requirements of a command (see Needs).
func (c Config) ValidateFor(n Needs) error { return c.scrub(c.problems(n)).err() }

func (c Config) problems(n Needs) Problems {
	var ps Problems

	// nats
	embedded := strings.TrimSpace(c.NATS.URL) == ""
	if !embedded {
		checkNATSURLs(&ps, c.NATS.URL)
	}
	switch {
	case c.NATS.EmbeddedListen != "":
		if msg := checkHostPort(c.NATS.EmbeddedListen, "127.0.0.1:4222"); msg != "" {
			ps.add("nats.embedded_listen", msg)
		} else if embedded && c.NATS.EmbeddedToken == "" && !listensOnLoopback(c.NATS.EmbeddedListen) {
			ps.add("nats.embedded_listen", fmt.Sprintf("%q is reachable from other machines and the embedded server has no credentials, "+
				"so anyone could read and publish action items: listen on loopback (127.0.0.1:4222), or set nats.embedded_token "+
				"(or nats.embedded_token_file) to a random token of at least %d characters (`openssl rand -hex 32`)",
				c.NATS.EmbeddedListen, MinEmbeddedTokenLen))
		}
	case embedded:
		ps.add("nats.embedded_listen", "required when nats.url is empty (embedded server)")
	}
	if t := c.NATS.EmbeddedToken; t != "" && len(t) < MinEmbeddedTokenLen {
		ps.add("nats.embedded_token", fmt.Sprintf("must be at least %d characters, such as the output of `openssl rand -hex 32`", MinEmbeddedTokenLen))
	}
	if embedded && strings.TrimSpace(c.NATS.StoreDir) == "" {
		ps.add("nats.store_dir", "required when nats.url is empty (embedded server)")
	}
	if msg := checkJetStreamName(c.NATS.Stream); msg != "" {
		ps.add("nats.stream", msg)
	}
	if msg := checkJetStreamName(c.NATS.Consumer); msg != "" {
		ps.add("nats.consumer", msg)
	}
	switch {
	case c.NATS.Replicas != 1 && c.NATS.Replicas != 3 && c.NATS.Replicas != 5:
		ps.add("nats.replicas", fmt.Sprintf("must be 1, 3 or 5, got %d", c.NATS.Replicas))
	case embedded && c.NATS.Replicas != 1:
		ps.add("nats.replicas", "must be 1 with the embedded server (nats.url empty)")
	}

	// servicenow
	sn := c.ServiceNow
	if sn.InstanceURL != "" {
		checkBaseURL(&ps, "servicenow.instance_url", sn.InstanceURL, false, sn.AllowInsecureHTTP, "https://<instance>.service-now.com")
	} else if n.ServiceNow {
		ps.add("servicenow.instance_url", "required, such as https://<instance>.service-now.com")
	}
	if n.ServiceNow && strings.TrimSpace(sn.ClientID) == "" {
		ps.add("servicenow.client_id", "required (the OAuth client id from System OAuth > Application Registry)")
	}
	if n.ServiceNow && sn.ClientSecret == "" {
		ps.add("servicenow.client_secret", "required (or servicenow.client_secret_file)")
	}
	switch {
	case sn.Username != "" && sn.Password == "" && n.ServiceNow:
		// Only for commands that talk to ServiceNow: the poller may share a
		// config file whose password is given to the consumers alone.
		ps.add("servicenow.password", "required with servicenow.username (or servicenow.password_file)")
	case sn.Username == "" && sn.Password != "":
		ps.add("servicenow.username", "required with servicenow.password")
	case n.ServiceNow && sn.Username == "" && sn.RefreshToken == "":
		ps.add("servicenow.username", "required: set username and password (password grant) or refresh_token (refresh-token grant)")
	}
	if sn.ImportTable == "" {
		ps.add("servicenow.import_table", "required, such as u_ionix_action_item")
	} else if !isIdent(sn.ImportTable) {
		ps.add("servicenow.import_table", fmt.Sprintf("must be a table name of a-z, 0-9 and _, got %q", sn.ImportTable))
	}
	if !isIdent(sn.FieldPrefix) {
		ps.add("servicenow.field_prefix", fmt.Sprintf("must be a-z, 0-9 and _ only (usually u_), got %q", sn.FieldPrefix))
	}
	if sn.Timeout <= 0 {
		ps.add("servicenow.timeout", "must be more than 0, such as 30s")
	}
	checkOverrides(&ps, "servicenow.category_overrides", sn.CategoryOverrides, func(v string) string {
		if strings.TrimSpace(v) == "" {
			return "must not be empty"
		}
		return ""
	})
	checkOverrides(&ps, "servicenow.impact_overrides", sn.ImpactOverrides, func(v string) string {
		if v != "1" && v != "2" && v != "3" {
			return fmt.Sprintf("must be \"1\" (High), \"2\" (Medium) or \"3\" (Low), got %q", v)
		}
		return ""
	})

	// filter
	for i, cat := range c.Filter.Categories {
		if strings.TrimSpace(cat) == "" {
			ps.add("filter.categories", fmt.Sprintf("entry %d is empty", i+1))
			continue
		}
		for _, prev := range c.Filter.Categories[:i] {
			if strings.EqualFold(prev, cat) {
				ps.add("filter.categories", fmt.Sprintf("%q and %q are the same category (names compare case-insensitively); list it once", prev, cat))
				break
			}
		}
	}
	if t := c.Filter.UrgencyThreshold; math.IsNaN(t) || t < MinUrgencyThreshold || t > MaxUrgencyThreshold {
		ps.add("filter.urgency_threshold", fmt.Sprintf("must be from 1 to 10, got %s", strconv.FormatFloat(t, 'g', -1, 64)))
	}

	// cap
	if c.Cap.MaxPerWindow < 1 {
		ps.add("cap.max_per_window", fmt.Sprintf("must be at least 1, got %d", c.Cap.MaxPerWindow))
	}
	if c.Cap.Window < MinCapWindow {
		ps.add("cap.window", fmt.Sprintf("must be at least 1s, got %s", c.Cap.Window))
	}
	if c.Cap.Pacing != PacingEven && c.Cap.Pacing != PacingBurst {
		ps.add("cap.pacing", fmt.Sprintf("must be %s or %s, got %q", PacingEven, PacingBurst, c.Cap.Pacing))
	}
	if c.Cap.HighReserve < 0 || c.Cap.MaxPerWindow > 0 && c.Cap.HighReserve >= c.Cap.MaxPerWindow {
		ps.add("cap.high_reserve", fmt.Sprintf("must be 0 (max_per_window/50) up to max_per_window - 1, got %d", c.Cap.HighReserve))
	}
	if c.Cap.Burst < 0 {
		ps.add("cap.burst", fmt.Sprintf("must be 0 (max_per_window/20) or more, got %d", c.Cap.Burst))
	}

	// consumer
	if c.Consumer.Concurrency < 1 || c.Consumer.Concurrency > MaxConcurrency {
		ps.add("consumer.concurrency", fmt.Sprintf("must be from 1 to %d, got %d", MaxConcurrency, c.Consumer.Concurrency))
	}
	if c.Consumer.MaxBackoff < MinMaxBackoff {
		ps.add("consumer.max_backoff", fmt.Sprintf("must be at least 1s, got %s", c.Consumer.MaxBackoff))
	}
	if c.Consumer.AckWait < MinAckWait {
		ps.add("consumer.ack_wait", fmt.Sprintf("must be at least 1s, got %s", c.Consumer.AckWait))
	}
	if c.Consumer.MaxDeliver < 0 {
		ps.add("consumer.max_deliver", fmt.Sprintf("must be 0 (unlimited) or at least 1, got %d", c.Consumer.MaxDeliver))
	}
	if c.Consumer.MaxAckPending < c.Consumer.Concurrency {
		ps.add("consumer.max_ack_pending", fmt.Sprintf("must be at least consumer.concurrency (%d) times the replicas you run, got %d", c.Consumer.Concurrency, c.Consumer.MaxAckPending))
	}
	if c.Consumer.ProcessConcurrency < 1 || c.Consumer.ProcessConcurrency > MaxProcessConcurrency {
		ps.add("consumer.process_concurrency", fmt.Sprintf("must be from 1 to %d, got %d", MaxProcessConcurrency, c.Consumer.ProcessConcurrency))
	}
	if c.Consumer.DrainTimeout < MinDrainTimeout {
		ps.add("consumer.drain_timeout", fmt.Sprintf("must be at least 1s, got %s", c.Consumer.DrainTimeout))
	}

	// ionix
	if c.IONIX.APIURL != "" {
		checkBaseURL(&ps, "ionix.api_url", c.IONIX.APIURL, true, false, "https://api.portal.ionix.io")
	} else if n.IONIX {
		ps.add("ionix.api_url", "required, such as https://api.portal.ionix.io")
	}
	if n.IONIX && c.IONIX.Token == "" {
		ps.add("ionix.token", "required (or ionix.token_file)")
	}
	if n.IONIX && strings.TrimSpace(c.IONIX.Account) == "" {
		ps.add("ionix.account", "required (the IONIX account name)")
	}
	if c.IONIX.PollInterval < MinPollInterval {
		ps.add("ionix.poll_interval", fmt.Sprintf("must be at least 10s, got %s", c.IONIX.PollInterval))
	}

	// http
	if c.HTTP.Listen != "" {
		if msg := checkHostPort(c.HTTP.Listen, "127.0.0.1:9090 (or empty to disable)"); msg != "" {
			ps.add("http.listen", msg)
		}
	}

	// log
	if !slices.Contains(LogLevels, c.Log.Level) {
		ps.add("log.level", fmt.Sprintf("must be one of %s, got %q", strings.Join(LogLevels, ", "), c.Log.Level))
	}
	if !slices.Contains(LogFormats, c.Log.Format) {
		ps.add("log.format", fmt.Sprintf("must be one of %s, got %q", strings.Join(LogFormats, ", "), c.Log.Format))
	}

	return ps
}

func checkNATSURLs(ps *Problems, list string) {
	for i, raw := range strings.Split(list, ",") {
		raw = strings.TrimSpace(raw)
		if raw == "" {
			ps.add("nats.url", fmt.Sprintf("entry %d of the comma-separated list is empty", i+1))
			continue
		}
		u, err := url.Parse(raw)
		if err != nil || u.Host == "" || u.Opaque != "" {
			ps.add("nats.url", fmt.Sprintf("entry %d is not a URL such as nats://host:4222", i+1))
			continue
		}
		switch u.Scheme {
		case "nats", "tls", "ws", "wss":
		default:
			ps.add("nats.url", fmt.Sprintf("%s: scheme must be nats, tls, ws or wss", strconv.Quote(redactURLs(raw))))
		}
	}
}

// checkBaseURL checks an https base URL; plain http only for a loopback host, or
// for any host with insecureOK.
func checkBaseURL(ps *Problems, key, raw string, allowPath, insecureOK bool, example string) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.Opaque != "" || u.Scheme == "" {
		ps.add(key, "must be an absolute URL such as "+example)
		return
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !insecureOK && !remote.IsLoopback(u.Hostname()) {
			ps.add(key, "must be https (plain http only for loopback)"+insecureHint(key))
		}
	default:
		ps.add(key, "must be https (plain http only for loopback)")
	}
	if u.User != nil {
		ps.add(key, "must not contain a user name or password; use the credential keys")
	}
	if !allowPath && u.Path != "" && u.Path != "/" {
		ps.add(key, "must be the base URL without a path, such as "+example)
	}
	if u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
		ps.add(key, "must not have a query or fragment")
	}
}

// checkHostPort returns a message if s is not host:port with a numeric port
// (the host may be empty, meaning every interface).
func checkHostPort(s, example string) string {
	host, port, err := net.SplitHostPort(s)
	bad := fmt.Sprintf("must be host:port such as %s, got %q", example, s)
	if err != nil || strings.ContainsAny(host, " /") {
		return bad
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 0 || p > 65535 {
		return bad
	}
	return ""
}

// listensOnLoopback reports whether a listen address (host:port) of the
// embedded server stays on this machine. An empty host is 127.0.0.1 there
// (package embedded); every other host name but localhost may resolve
// anywhere.
func listensOnLoopback(listen string) bool {
	host, _, err := net.SplitHostPort(listen)
	return err == nil && (host == "" || remote.IsLoopback(host))
}

// checkJetStreamName checks a stream or consumer name as JetStream accepts it.
func checkJetStreamName(s string) string {
	if s == "" {
		return "required"
	}
	if len(s) > maxJetStreamName {
		return fmt.Sprintf("must be at most %d bytes", maxJetStreamName)
	}
	for _, r := range s {
		if unicode.IsSpace(r) || !unicode.IsPrint(r) || strings.ContainsRune(".*>/\\", r) {
			return fmt.Sprintf("must not contain spaces, '.', '*', '>', '/', '\\' or control characters, got %q", s)
		}
	}
	return ""
}

func isIdent(s string) bool {
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_') {
			return false
		}
	}
	return true
}

// checkOverrides checks a category map: non-empty keys, no two keys equal
// but for case, and each value by checkValue.
func checkOverrides(ps *Problems, key string, m map[string]string, checkValue func(string) string) {
	cats := make([]string, 0, len(m))
	for k := range m {
		cats = append(cats, k)
	}
	slices.Sort(cats)
	for i, cat := range cats {
		if strings.TrimSpace(cat) == "" {
			ps.add(key, "a category name is empty")
			continue
		}
		for _, prev := range cats[:i] {
			if strings.EqualFold(prev, cat) {
				ps.add(key, fmt.Sprintf("%q and %q are the same category (names compare case-insensitively); give it once", prev, cat))
				break
			}
		}
		if msg := checkValue(m[cat]); msg != "" {
			ps.add(key, fmt.Sprintf("%q: %s", cat, msg))
		}
	}
}

// scrub replaces every secret value of c that occurs in a problem by
// RedactedValue: a secret pasted into the wrong key (or used as a key name)
// must not be echoed either. It applies the one rule of remote.Redactor: any
// run of remote.MinFragment characters of a secret, in any letter case and
// escaped form, and a shorter secret only where it stands as a whole token
// (a one-letter password does not mangle every word holding that letter).
func (c Config) scrub(ps Problems) Problems {
	if len(ps) == 0 {
		return ps
	}
	var vals []string
	for i := range leaves {
		lf := &leaves[i]
		if lf.secret {
			vals = append(vals, lf.field(&c).String())
		}
	}
	red := remote.NewRedactor(RedactedValue, vals...)
	for i := range ps {
		ps[i].Key = red.Redact(ps[i].Key)
		ps[i].Message = red.Redact(ps[i].Message)
	}
	return ps
}

// insecureHint names the way out for an emulator on another host.
func insecureHint(key string) string {
	if key == "servicenow.instance_url" {
		return "; for the emulator on another host of a private network, set servicenow.allow_insecure_http"
	}
	return ""
}
