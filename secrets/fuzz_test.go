package secrets_test

import (
	"bytes"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ionix/ionixsnow/secrets"
)

// FuzzOpen: Open never panics, and anything but the one genuine ciphertext fails
// with ErrUndecryptable.
func FuzzOpen(f *testing.F) {
	k, err := secrets.Init(filepath.Join(f.TempDir(), "keyset.json"))
	if err != nil {
		f.Fatal(err)
	}
	plaintext := []byte("fuzz-plaintext")
	ad := secrets.AssociatedData("acme", "servicenow.password")
	sealed, err := k.Seal(plaintext, ad)
	if err != nil {
		f.Fatal(err)
	}
	for _, seed := range []string{
		sealed, sealed[:len(sealed)/2], "", secrets.SealedPrefix, "tink1:AAAA",
		secrets.SealedPrefix + "AAAAAQE" + strings.Repeat("A", 40), "plain-password",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := k.Open(s, ad)
		if err != nil {
			if !errors.Is(err, secrets.ErrUndecryptable) {
				t.Fatalf("Open(%q) = %v, not ErrUndecryptable", s, err)
			}
			return
		}
		if !bytes.Equal(got, plaintext) {
			t.Fatalf("Open(%q) = %q: opened something Seal did not make", s, got)
		}
		_, _ = secrets.SealedKeyID(s)
	})
}
