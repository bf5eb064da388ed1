package secrets_test

import (
	"bytes"
	"encoding/base64"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/ionix/ionixsnow/secrets"
)

func TestSealOpenRoundTrip(t *testing.T) {
	k, _ := initKeyset(t)
	cases := []struct {
		name      string
		plaintext []byte
	}{
		{"client secret", []byte("Zx9-client-secret")},
		{"empty", []byte{}},
		{"binary", []byte{0, 1, 2, 0xff, 0xfe}},
		{"long refresh token", bytes.Repeat([]byte("r"), 4096)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ad := secrets.AssociatedData("acme", "servicenow.refresh_token")
			sealed, err := k.Seal(tc.plaintext, ad)
			if err != nil {
				t.Fatalf("Seal: %v", err)
			}
			if !strings.HasPrefix(sealed, secrets.SealedPrefix) {
				t.Errorf("sealed %q lacks the prefix %q", sealed, secrets.SealedPrefix)
			}
			if len(tc.plaintext) > 0 && strings.Contains(sealed, string(tc.plaintext)) {
				t.Error("the sealed string contains the plaintext")
			}
			got, err := k.Open(sealed, ad)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			if !bytes.Equal(got, tc.plaintext) {
				t.Errorf("Open = %q, want %q", got, tc.plaintext)
			}
		})
	}
}

func TestSealTwiceGivesDifferentCiphertexts(t *testing.T) {
	k, _ := initKeyset(t)
	ad := secrets.AssociatedData("acme", "servicenow.client_secret")
	first, err := k.Seal([]byte("same"), ad)
	if err != nil {
		t.Fatal(err)
	}
	second, err := k.Seal([]byte("same"), ad)
	if err != nil {
		t.Fatal(err)
	}
	if first == second {
		t.Fatal("two seals of the same plaintext are equal")
	}
	// The wrapped data keys differ too, not only the payloads' nonces: a fresh data
	// key per ciphertext.
	a, b := decodeSealed(t, first), decodeSealed(t, second)
	wrappedLen := 4 + int(a[3]) // the length fits one byte for AES256-GCM data keys
	if bytes.Equal(a[:wrappedLen], b[:wrappedLen]) {
		t.Error("two seals share the wrapped data key")
	}
}

func TestOpenWithOtherAssociatedDataFails(t *testing.T) {
	k, _ := initKeyset(t)
	sealed, err := k.Seal([]byte("acme's password"), secrets.AssociatedData("acme", "servicenow.password"))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		ad   []byte
	}{
		{"another tenant", secrets.AssociatedData("globex", "servicenow.password")},
		{"another field", secrets.AssociatedData("acme", "servicenow.client_secret")},
		{"tenant and field swapped", secrets.AssociatedData("servicenow.password", "acme")},
		{"no associated data", nil},
		{"bare tenant id", []byte("acme")},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := k.Open(sealed, tc.ad)
			if !errors.Is(err, secrets.ErrUndecryptable) {
				t.Fatalf("Open = %q, %v; want ErrUndecryptable", got, err)
			}
		})
	}
}

func TestOpenTamperedOrForeignFails(t *testing.T) {
	k, _ := initKeyset(t)
	other, _ := initKeyset(t)
	ad := secrets.AssociatedData("acme", "ionix.token")
	sealed, err := k.Seal([]byte("ionix-api-token"), ad)
	if err != nil {
		t.Fatal(err)
	}
	raw := decodeSealed(t, sealed)
	flipped := func(i int) string {
		b := bytes.Clone(raw)
		b[i] ^= 0x01
		return encodeSealed(b)
	}
	wrappedEnd := 4 + int(raw[3])
	cases := []struct {
		name   string
		sealed string
		keyset *secrets.Keyset
	}{
		{"length of the wrapped data key", flipped(3), k},
		{"key id of the wrapping key", flipped(4 + 4), k},
		{"wrapped data key", flipped(wrappedEnd - 1), k},
		{"payload nonce", flipped(wrappedEnd + 1), k},
		{"payload ciphertext", flipped(wrappedEnd + 12), k},
		{"payload tag", flipped(len(raw) - 1), k},
		{"truncated", encodeSealed(raw[:len(raw)-1]), k},
		{"extended", encodeSealed(append(bytes.Clone(raw), 0)), k},
		{"no prefix", strings.TrimPrefix(sealed, secrets.SealedPrefix), k},
		{"other prefix", "tink2:" + strings.TrimPrefix(sealed, secrets.SealedPrefix), k},
		{"not base64", secrets.SealedPrefix + "!!!!", k},
		{"padded base64", sealed + "=", k},
		{"empty", "", k},
		{"prefix only", secrets.SealedPrefix, k},
		{"plaintext stored as is", "ionix-api-token", k},
		{"sealed by another keyset", sealed, other},
		{"zero Keyset", sealed, &secrets.Keyset{}},
		{"nil Keyset", sealed, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.keyset.Open(tc.sealed, ad)
			if !errors.Is(err, secrets.ErrUndecryptable) {
				t.Fatalf("Open = %q, %v; want ErrUndecryptable", got, err)
			}
		})
	}
}

func TestAssociatedDataIsUnambiguous(t *testing.T) {
	pairs := [][2]string{
		{"acme", "servicenow.password"},
		{"acm", "eservicenow.password"},
		{"acme.servicenow", "password"},
		{"acme", "servicenow.password\x00"},
		{"acme\x00\x00\x00\x13servicenow.password", ""},
		{"", "acme"},
		{"acme", ""},
		// Without the tenant's length these two would be the same bytes.
		{"\x00\x00\x00\x05", "x"},
		{"", "\x00\x00\x00\x01x"},
	}
	seen := map[string][2]string{}
	for _, p := range pairs {
		ad := string(secrets.AssociatedData(p[0], p[1]))
		if earlier, dup := seen[ad]; dup {
			t.Errorf("AssociatedData%q equals AssociatedData%q", p, earlier)
		}
		seen[ad] = p
	}
	if ad := secrets.AssociatedData("acme", "ionix.token"); !bytes.HasPrefix(ad, []byte("ionixsnow tenant secret v1")) {
		t.Errorf("AssociatedData = %q, want the fixed context first", ad)
	}
}

func TestSealedKeyIDRefusesMalformed(t *testing.T) {
	for _, s := range []string{"", "tink1:", "tink1:AAAA", "plain", secrets.SealedPrefix + "AAAAAAAAAAAA"} {
		if id, err := secrets.SealedKeyID(s); !errors.Is(err, secrets.ErrUndecryptable) {
			t.Errorf("SealedKeyID(%q) = %d, %v; want ErrUndecryptable", s, id, err)
		}
	}
}

func TestZeroKeysetSealsNothing(t *testing.T) {
	for _, k := range []*secrets.Keyset{nil, {}} {
		if s, err := k.Seal([]byte("x"), nil); err == nil {
			t.Errorf("%v sealed %q", k, s)
		}
		if _, err := k.Rotate(); err == nil {
			t.Errorf("%v rotated", k)
		}
		if err := k.Write(t.TempDir() + "/k.json"); err == nil {
			t.Errorf("%v wrote a file", k)
		}
	}
}

func TestSealOpenConcurrently(t *testing.T) {
	k, _ := initKeyset(t)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Go(func() {
			ad := secrets.AssociatedData("tenant"+string(rune('a'+g)), "servicenow.password")
			for range 25 {
				sealed, err := k.Seal([]byte("pw"), ad)
				if err != nil {
					errs <- err
					return
				}
				if got, err := k.Open(sealed, ad); err != nil || string(got) != "pw" {
					errs <- errors.Join(errors.New("round trip failed"), err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func decodeSealed(t *testing.T, sealed string) []byte {
	t.Helper()
	raw, err := base64.RawStdEncoding.DecodeString(strings.TrimPrefix(sealed, secrets.SealedPrefix))
	if err != nil {
		t.Fatalf("sealed %q is not prefix+base64: %v", sealed, err)
	}
	return raw
}

func encodeSealed(raw []byte) string {
	return secrets.SealedPrefix + base64.RawStdEncoding.EncodeToString(raw)
}
