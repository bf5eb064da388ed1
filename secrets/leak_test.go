package secrets_test

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ionix/ionixsnow/secrets"
)

// keyMaterial returns the forms in which a keyset file's keys could leak: each key's
// serialized value as stored, and its 32 raw key bytes in hex, base64 and as is.
func keyMaterial(t *testing.T, path string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Key []struct {
			KeyData struct {
				Value string `json:"value"`
			} `json:"keyData"`
		} `json:"key"`
	}
	if err := json.Unmarshal(data, &file); err != nil {
		t.Fatal(err)
	}
	var forms []string
	for _, key := range file.Key {
		value, err := base64.StdEncoding.DecodeString(key.KeyData.Value)
		if err != nil || len(value) < 32 {
			t.Fatalf("key value %d bytes, %v: not an AES256-GCM key", len(value), err)
		}
		raw := value[len(value)-32:] // AesGcmKey: the key bytes are its last field
		forms = append(forms, key.KeyData.Value, hex.EncodeToString(raw),
			base64.StdEncoding.EncodeToString(raw), base64.RawStdEncoding.EncodeToString(raw), string(raw))
		// A prefix of the stored value is what a parser quoting its input would show.
		forms = append(forms, key.KeyData.Value[:16])
	}
	if len(forms) == 0 {
		t.Fatal("no keys in the keyset file")
	}
	return forms
}

// TestNothingLeaksKeyMaterialOrPlaintext provokes every error path and prints the
// keyset every way fmt can, and finds neither key material nor the plaintext.
func TestNothingLeaksKeyMaterialOrPlaintext(t *testing.T) {
	const plaintext = "PLAINTEXT-CANARY-7f3a9c"
	dir := t.TempDir()
	path := filepath.Join(dir, "keyset.json")
	k, err := secrets.Init(path)
	if err != nil {
		t.Fatal(err)
	}
	rotated, err := k.Rotate()
	if err != nil {
		t.Fatal(err)
	}
	if err := rotated.Write(path); err != nil {
		t.Fatal(err)
	}
	secretForms := append(keyMaterial(t, path), plaintext)

	ad := secrets.AssociatedData("acme", "servicenow.client_secret")
	sealed, err := rotated.Seal([]byte(plaintext), ad)
	if err != nil {
		t.Fatal(err)
	}
	raw := decodeSealed(t, sealed)
	tampered := append([]byte(nil), raw...)
	tampered[len(tampered)-1] ^= 1
	keysetJSON, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	other, _ := initKeyset(t)

	var outputs []string
	record := func(_ any, err error) {
		if err == nil {
			t.Error("an error path did not fail")
			return
		}
		outputs = append(outputs, err.Error(), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", err))
	}
	record(secrets.Init(path))
	record(secrets.Load(filepath.Join(dir, "missing.json")))
	record(secrets.Load(writeFile(t, keysetJSON[:len(keysetJSON)-10])))                                      // truncated: a parser error
	record(secrets.Load(writeFile(t, []byte(strings.Replace(string(keysetJSON), `"value"`, `"valeu"`, 1))))) // unknown field next to key material
	record(secrets.Load(writeFile(t, []byte(strings.Replace(string(keysetJSON), `"ENABLED"`, `"ENABLE"`, 1)))))
	record(secrets.Load(writeFile(t, []byte(strings.Replace(string(keysetJSON), `"primaryKeyId": `, `"primaryKeyId": 1`, 1)))))
	record(rotated.Open(sealed, secrets.AssociatedData("globex", "servicenow.client_secret")))
	record(rotated.Open(encodeSealed(tampered), ad))
	record(rotated.Open(strings.TrimPrefix(sealed, secrets.SealedPrefix), ad))
	record(rotated.Open(secrets.SealedPrefix+"%%%", ad))
	record(rotated.Open(plaintext, ad))
	record(other.Open(sealed, ad))
	record(secrets.SealedKeyID(plaintext))
	record((&secrets.Keyset{}).Seal([]byte(plaintext), ad))
	record(nil, rotated.Write(filepath.Join(dir, "missing", "keyset.json")))

	for _, ks := range []*secrets.Keyset{k, rotated} {
		outputs = append(outputs, ks.String(), ks.GoString(),
			fmt.Sprint(ks), fmt.Sprintf("%v %+v %#v %s", ks, ks, ks, ks),
			fmt.Sprintf("%v %+v %#v", *ks, *ks, *ks))
	}
	if got, want := rotated.String(), fmt.Sprintf("secrets.Keyset{keys: 2, primary: %d}", rotated.PrimaryKeyID()); got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}

	for _, out := range outputs {
		for _, secret := range secretForms {
			if strings.Contains(out, secret) {
				t.Errorf("output %q contains a secret (%q)", out, secret)
			}
		}
	}
}
