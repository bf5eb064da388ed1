package config

import (
	"fmt"
	"math"
	"net"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// EnvPrefix starts the name of every environment variable of a key.
const EnvPrefix = "IONIXSNOW_"

// leaf is one configuration key, found by reflection over Config: the single
// place that knows how keys, environment variables and secrets are named.
type leaf struct {
	section string // yaml tag of the section, e.g. "servicenow"
	name    string // yaml tag of the key, e.g. "client_secret"
	key     string // dotted: "servicenow.client_secret"
	env     string // IONIXSNOW_SERVICENOW_CLIENT_SECRET
	secret  bool
	index   []int // field index path from Config
	typ     reflect.Type
}

var (
	leaves   = buildLeaves()
	sections = buildSections()
	byKey    = map[string]*leaf{}
)

func init() {
	envs := map[string]string{}
	for i := range leaves {
		l := &leaves[i]
		byKey[l.key] = l
		names := []string{l.env}
		if l.secret {
			names = append(names, l.env+"_FILE")
			if _, clash := byKey[l.key+"_file"]; clash {
				panic("config: key " + l.key + "_file clashes with the file form of a secret")
			}
		}
		for _, n := range names {
			if other, dup := envs[n]; dup {
				panic("config: environment variable " + n + " names both " + other + " and " + l.key)
			}
			envs[n] = l.key
		}
	}
}

func yamlName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	if name == "" {
		panic("config: field " + f.Name + " has no yaml tag")
	}
	return name
}

func buildLeaves() []leaf {
	var out []leaf
	t := reflect.TypeFor[Config]()
	for i := range t.NumField() {
		sf := t.Field(i)
		sec := yamlName(sf)
		st := sf.Type
		for j := range st.NumField() {
			f := st.Field(j)
			name := yamlName(f)
			checkType(f.Type)
			out = append(out, leaf{
				section: sec,
				name:    name,
				key:     sec + "." + name,
				env:     EnvPrefix + strings.ToUpper(sec) + "_" + strings.ToUpper(name),
				secret:  f.Tag.Get("secret") == "true",
				index:   []int{i, j},
				typ:     f.Type,
			})
			if out[len(out)-1].secret && f.Type.Kind() != reflect.String {
				panic("config: secret " + sec + "." + name + " is not a string")
			}
		}
	}
	return out
}

func buildSections() []string {
	var out []string
	t := reflect.TypeFor[Config]()
	for i := range t.NumField() {
		out = append(out, yamlName(t.Field(i)))
	}
	return out
}

var (
	durationType = reflect.TypeFor[time.Duration]()
	listType     = reflect.TypeFor[[]string]()
	mapType      = reflect.TypeFor[map[string]string]()
)

// checkType panics at init on a field type the loader cannot fill, so adding
// a key of a new type fails every test at once instead of silently.
func checkType(t reflect.Type) {
	switch {
	case t == durationType, t == listType, t == mapType:
		return
	}
	switch t.Kind() {
	case reflect.String, reflect.Int, reflect.Float64, reflect.Bool:
		return
	}
	panic("config: unsupported field type " + t.String())
}

func (l *leaf) field(c *Config) reflect.Value {
	return reflect.ValueOf(c).Elem().FieldByIndex(l.index)
}

func (l *leaf) isList() bool { return l.typ == listType }
func (l *leaf) isMap() bool  { return l.typ == mapType }

// describe names what a key of this type expects, for messages.
func (l *leaf) describe() string {
	switch {
	case l.typ == durationType:
		return "a duration in Go syntax such as 30s, 5m or 1h30m"
	case l.isList():
		return "a list of strings"
	case l.isMap():
		return "a mapping of category to value"
	}
	switch l.typ.Kind() {
	case reflect.Int:
		return "a whole number"
	case reflect.Float64:
		return "a number"
	case reflect.Bool:
		return "true or false"
	}
	return "a string"
}

// setScalar parses s into the field of a scalar key (string, int, float,
// bool, duration). The error never contains s.
func (l *leaf) setScalar(v reflect.Value, s string) error {
	bad := fmt.Errorf("must be %s", l.describe())
	switch {
	case l.typ == durationType:
		d, err := time.ParseDuration(strings.TrimSpace(s))
		if err != nil {
			return bad
		}
		v.SetInt(int64(d))
		return nil
	}
	switch l.typ.Kind() {
	case reflect.String:
		v.SetString(s)
	case reflect.Int:
		n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
		if err != nil || v.OverflowInt(n) {
			return bad
		}
		v.SetInt(n)
	case reflect.Float64:
		f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			return bad
		}
		v.SetFloat(f)
	case reflect.Bool:
		switch strings.ToLower(strings.TrimSpace(s)) {
		case "true", "t", "1", "yes", "y", "on":
			v.SetBool(true)
		case "false", "f", "0", "no", "n", "off":
			v.SetBool(false)
		default:
			return bad
		}
	default:
		return bad
	}
	return nil
}

// Keys returns the dotted name of every configuration key, in file order.
func Keys() []string {
	out := make([]string, len(leaves))
	for i, l := range leaves {
		out[i] = l.key
	}
	return out
}

// EnvName returns the environment variable of a dotted key
// ("cap.window" -> "IONIXSNOW_CAP_WINDOW"), or "" for an unknown key.
func EnvName(key string) string {
	if l, ok := byKey[key]; ok {
		return l.env
	}
	return ""
}

// SecretKeys returns the dotted keys that are secrets: nats.embedded_token,
// servicenow.client_secret, servicenow.password, servicenow.refresh_token and
// ionix.token.
func SecretKeys() []string {
	var out []string
	for _, l := range leaves {
		if l.secret {
			out = append(out, l.key)
		}
	}
	return out
}

// IsSecret reports whether the dotted key is a secret.
func IsSecret(key string) bool {
	l, ok := byKey[key]
	return ok && l.secret
}

// UnknownEnv returns a problem for every IONIXSNOW_* variable in environ
// (as from os.Environ) that names no key, with the nearest key's variable as
// a suggestion, so that a misspelt variable is refused instead of silently
// ignored. The problems never show a value. Variables that Kubernetes sets
// for a Service whose name starts with "ionixsnow" (service links such as
// IONIXSNOW_METRICS_SERVICE_HOST) are not ours and pass, and so do the
// variables of the tools around ionixsnow (notConfig). LoadEnviron
// includes these problems; Load cannot see them, since it only looks
// variables up.
func UnknownEnv(environ []string) error { return unknownEnv(environ).err() }

// notConfig are IONIXSNOW_* variables that name no key but belong to the tools
// around ionixsnow: IONIXSNOW_SRC is the project directory of the shared
// side-by-side benchmark (../shared/peers/side-by-side.sh), which the processes
// it starts inherit.
var notConfig = []string{"IONIXSNOW_SRC"}

func unknownEnv(environ []string) Problems {
	known := map[string]bool{}
	for _, name := range notConfig {
		known[name] = true
	}
	var names []string
	for _, l := range leaves {
		known[l.env] = true
		names = append(names, l.env)
		if l.secret {
			known[l.env+"_FILE"] = true
			names = append(names, l.env+"_FILE")
		}
	}
	var ps Problems
	for _, kv := range environ {
		name, value, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, EnvPrefix) || known[name] || isServiceLink(name, value) {
			continue
		}
		hint := suggest(name, names)
		if hint == "" {
			hint = "; the variable of a key is IONIXSNOW_<SECTION>_<KEY> (keys: config/ionixsnow.example.yaml)"
		}
		ps.add(name, "unknown environment variable: no configuration key has this name"+hint)
	}
	return ps
}

// serviceLinks are the variables Kubernetes sets in every pod for every
// Service of its namespace (unless enableServiceLinks is off), for a Service
// named ionixsnow or ionixsnow-*: <SVC>_SERVICE_HOST, <SVC>_SERVICE_PORT
// [_<PORT NAME>], <SVC>_PORT and <SVC>_PORT_<port>_<PROTO>[_PROTO|_PORT|
// _ADDR], each with the value it must have, so that a guessed key such as
// IONIXSNOW_HTTP_PORT=9191 is still refused.
var serviceLinks = []struct {
	name  *regexp.Regexp
	value func(string) bool
}{
	{serviceLink(`SERVICE_HOST`), isIP},
	{serviceLink(`SERVICE_PORT(_[A-Z0-9_]+)?`), isPort},
	{serviceLink(`PORT(_[0-9]+_(TCP|UDP|SCTP))?`), isServiceURL},
	{serviceLink(`PORT_[0-9]+_(TCP|UDP|SCTP)_PROTO`), isProto},
	{serviceLink(`PORT_[0-9]+_(TCP|UDP|SCTP)_PORT`), isPort},
	{serviceLink(`PORT_[0-9]+_(TCP|UDP|SCTP)_ADDR`), isIP},
}

func serviceLink(suffix string) *regexp.Regexp {
	return regexp.MustCompile(`^IONIXSNOW(_[A-Z0-9_]+)?_` + suffix + `$`)
}

// isServiceLink reports whether name=value is a Kubernetes service link.
func isServiceLink(name, value string) bool {
	for _, l := range serviceLinks {
		if l.name.MatchString(name) && l.value(value) {
			return true
		}
	}
	return false
}

func isIP(s string) bool    { return net.ParseIP(s) != nil }
func isProto(s string) bool { return s == "tcp" || s == "udp" || s == "sctp" }

func isPort(s string) bool {
	n, err := strconv.Atoi(s)
	return err == nil && n > 0 && n < 65536
}

// isServiceURL reports whether s is as tcp://10.96.0.1:9090.
func isServiceURL(s string) bool {
	proto, hostPort, ok := strings.Cut(s, "://")
	host, port, err := net.SplitHostPort(hostPort)
	return ok && isProto(proto) && err == nil && isIP(host) && isPort(port)
}

// closest returns the candidate nearest to s if it is near enough to be a
// likely misspelling, else "".
func closest(s string, candidates []string) string {
	best, bestD := "", 0
	for _, c := range candidates {
		d := distance(strings.ToLower(s), strings.ToLower(c))
		if best == "" || d < bestD {
			best, bestD = c, d
		}
	}
	if best == "" || bestD > max(2, len(s)/4) {
		return ""
	}
	return best
}

// distance is the Levenshtein distance of a and b.
func distance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}
