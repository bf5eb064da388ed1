package servicenow

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/rs/zerolog"
)

// fuzzSecrets are the client's secrets in FuzzImportResult; a hostile answer may
// echo any of them.
var fuzzSecrets = []string{"Cl1ent-S3cret-Value", "pa55word-of-the-user", "refresh-T0ken-0123456789"}

// FuzzImportResult feeds any answer to the import decoder: it never panics, it
// reports success only for a result that says inserted or updated, and nothing it
// returns holds 8 characters of a secret, whatever the answer echoes.
func FuzzImportResult(f *testing.F) {
	f.Add(200, "application/json", []byte(`{"import_set":"ISET1","staging_table":"u_x","result":[{"status":"inserted","sys_id":"a","display_value":"INC1"}]}`))
	f.Add(201, "application/json", []byte(`{"result":[{"status":"error","error_message":"Cl1ent-S3cret-Value"}]}`))
	f.Add(200, "text/html", []byte(`<html><title>Hibernating pa55word-of-the-user</title></html>`))
	f.Add(200, "application/json", []byte(`{"result":[{"status":"updated"},{"status":"ignored","status_message":"refresh-T0ken-0123456789"}]}`))
	f.Add(500, "text/plain", []byte(strings.Repeat("x", 179)+"client_secret=Cl1ent-S3cret-Value"))
	f.Add(200, "application/json", []byte(`{"result":[]}`))
	f.Fuzz(func(t *testing.T, status int, contentType string, body []byte) {
		c, err := New(Config{InstanceURL: "http://127.0.0.1:1", ClientID: "ionix", ClientSecret: fuzzSecrets[0],
			Username: "ionix", Password: fuzzSecrets[1], RefreshToken: fuzzSecrets[2]}, zerolog.Nop())
		if err != nil {
			t.Fatal(err)
		}
		res, err := c.importResult(&response{status: status, contentType: contentType, body: body})
		if err == nil && res.Status != "inserted" && res.Status != "updated" {
			t.Errorf("success with result status %q", res.Status)
		}
		var se *Error
		if err != nil && !errors.As(err, &se) {
			t.Errorf("error %T is not a *servicenow.Error", err)
		}
		out := fmt.Sprintf("%v %+v", err, res)
		lower := strings.ToLower(out)
		for _, s := range fuzzSecrets {
			s = strings.ToLower(s)
			for i := 0; i+8 <= len(s); i++ {
				if strings.Contains(lower, s[i:i+8]) {
					t.Fatalf("%q of a secret in %q", s[i:i+8], out)
				}
			}
		}
	})
}

// FuzzTableRows feeds any answer to the Table API decoder: it never panics, fails
// only with a *servicenow.Error, and no secret fragment reaches that error.
func FuzzTableRows(f *testing.F) {
	f.Add(200, "application/json", []byte(`{"result":[{"sys_id":"a","number":"INC1","correlation_id":"ionix:1","opened_by":{"value":"u","link":"l"}}]}`))
	f.Add(200, "application/json", []byte(`{"result":[{"x":[1,2,{"y":null}]}]}`))
	f.Add(403, "application/json", []byte(`{"error":{"message":"pa55word-of-the-user","detail":"x"},"status":"failure"}`))
	f.Add(200, "text/html", []byte(`<title>Cl1ent-S3cret-Value</title>`))
	f.Fuzz(func(t *testing.T, status int, contentType string, body []byte) {
		c, err := New(Config{InstanceURL: "http://127.0.0.1:1", ClientID: "ionix", ClientSecret: fuzzSecrets[0],
			Username: "ionix", Password: fuzzSecrets[1], RefreshToken: fuzzSecrets[2]}, zerolog.Nop())
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.tableRows(OpFindIncidents, &response{status: status, contentType: contentType, body: body})
		if err == nil {
			return
		}
		var se *Error
		if !errors.As(err, &se) {
			t.Errorf("error %T is not a *servicenow.Error", err)
		}
		lower := strings.ToLower(err.Error())
		for _, s := range fuzzSecrets {
			s = strings.ToLower(s)
			for i := 0; i+8 <= len(s); i++ {
				if strings.Contains(lower, s[i:i+8]) {
					t.Fatalf("%q of a secret in %q", s[i:i+8], err)
				}
			}
		}
	})
}
