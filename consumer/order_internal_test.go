package consumer

import "testing"

func TestHarmlessAfter(t *testing.T) {
	plain := func(fp string) Ticket { return Ticket{Fingerprint: fp, Status: "updated"} }
	resolved := func(fp string) Ticket { return Ticket{Fingerprint: fp, Status: StatusResolved} }
	reopened := func(fp string) Ticket { return Ticket{Fingerprint: fp, Status: StatusReopened} }
	tests := []struct {
		name         string
		late, newest Ticket
		want         bool
	}{
		{"same version, plain posts", plain("a"), plain("a"), true},
		{"older version", plain("a"), plain("b"), false},
		{"plain post after the resolving", plain("a"), resolved("a"), true},
		{"plain post after the reopening", plain("a"), reopened("a"), true},
		{"resolving after a plain post", resolved("a"), plain("a"), false},
		{"resolving after the reopening", resolved("a"), reopened("a"), false},
		{"reopening after the resolving", reopened("a"), resolved("a"), false},
		{"resolving twice", resolved("a"), resolved("a"), true},
		{"reopening twice", reopened("a"), reopened("a"), true},
		{"older version's resolving", resolved("a"), resolved("b"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := harmlessAfter(tt.late, tt.newest); got != tt.want {
				t.Errorf("harmlessAfter(%+v, %+v) = %v, want %v", tt.late, tt.newest, got, tt.want)
			}
		})
	}
}

func TestCopyReopens(t *testing.T) {
	plain := Ticket{Fingerprint: "a", Status: "updated"}
	resolved := Ticket{Fingerprint: "a", Status: StatusResolved}
	reopened := Ticket{Fingerprint: "a", Status: StatusReopened}
	tests := []struct {
		name         string
		late, newest Ticket
		want         bool
	}{
		{"plain opened after an older closing", resolved, plain, true},
		{"reopening after an older closing", resolved, reopened, true},
		{"reopening after an older plain post", plain, reopened, true},
		{"plain opened after an older plain post", plain, plain, false},
		{"closing after an older reopening", reopened, resolved, false},
		{"closing after an older plain post", plain, resolved, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := copyReopens(tt.late, tt.newest); got != tt.want {
				t.Errorf("copyReopens(late %s, newest %s) = %v, want %v", tt.late.Status, tt.newest.Status, got, tt.want)
			}
		})
	}
}
