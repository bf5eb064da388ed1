// Package config is ionixsnow's configuration: the Config type with the
// defaults of SPEC §7, loading from a YAML file and IONIXSNOW_* environment
// variables, secrets read from files, validation that reports every problem
// at once (each naming its key), and redaction for output.
//
// Sources, later ones winning:
//
//  1. Default().
//  2. The YAML file given to Load (sections and keys as in
//     ionixsnow.example.yaml). An unknown section or key is a problem that
//     names it and its line.
//  3. The environment: every key as IONIXSNOW_<SECTION>_<KEY>, for example
//     IONIXSNOW_SERVICENOW_INSTANCE_URL or IONIXSNOW_CAP_WINDOW=30s. Lists
//     are comma separated (IONIXSNOW_FILTER_CATEGORIES=Vulnerability,PKI),
//     maps are k=v pairs (IONIXSNOW_SERVICENOW_IMPACT_OVERRIDES=DNS=3,PKI=1),
//     booleans true/false (also 1/0, yes/no, on/off), durations in Go syntax
//     (30s, 5m, 1h30m). A variable that is set but empty counts as unset.
//     LoadEnviron, which sees the whole environment, refuses an IONIXSNOW_*
//     variable that names no key (UnknownEnv), as an unknown YAML key is.
//  4. Secrets from files: each secret key (see SecretKeys) may instead be
//     given as <key>_file, in YAML (client_secret_file: /run/secrets/x) or
//     in the environment (IONIXSNOW_SERVICENOW_CLIENT_SECRET_FILE). The file
//     is read last (a relative path is relative to the working directory)
//     and its trailing newline trimmed; a file over MaxSecretFileSize is a
//     problem, and a regular file that other users may access is a Warning
//     (LoadEnviron returns them; the command reports them). The value and
//     the file form follow the same precedence: a file named in the
//     environment beats a value in YAML, and a value in the environment
//     beats a file named in YAML. Giving both forms in one source is a
//     problem.
//
// Load returns every problem it finds, from parsing and from Validate,
// together as a Problems error ordered as the keys of the file; LoadFor adds
// the requirements of a command (Needs), so a command reports all at once;
// LoadEnviron, which commands use, adds unknown variables and warnings.
// No error text, String, or marshalled form of a Config ever contains a
// secret value: secrets are never quoted, and any secret value that turns up
// elsewhere (pasted into the wrong key) is scrubbed from messages.
package config
