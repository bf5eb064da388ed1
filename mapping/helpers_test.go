package mapping_test

import (
	"encoding/json"
	"math"

	"github.com/ionix/ionixsnow/ionix"
)

// fullItem is an action item with every field set.
func fullItem() ionix.ActionItem {
	isOpen := true
	return ionix.ActionItem{
		ID:            "5f3c2a1e-0b6d-4c1e-9a7f-1d2e3f4a5b6c",
		Title:         "CVE-2024-3400 PAN-OS GlobalProtect command injection on vpn.example.net",
		Summary:       "GlobalProtect gateway exposed.",
		Description:   "PAN-OS is affected by a command injection vulnerability. Upgrade PAN-OS.",
		Asset:         "vpn.example.net",
		AssetType:     "subdomain",
		Type:          "Vulnerability",
		Urgency:       9.3,
		CurrentState:  "open",
		FirstOpenedAt: "2024-05-01T23:30:00-05:00",
		LastOpenedAt:  "2024-05-03T10:00:00Z",
		UpdatedTime:   "2024-05-03T10:00:00Z",
		IsOpen:        &isOpen,
		Tags:          []string{"internet-facing", "kev"},
		CVEs:          []string{"CVE-2024-3400"},
		Extra:         map[string]json.RawMessage{"groups": json.RawMessage(`[{"name":"Production"}]`)},
	}
}

func nan() float64 { return math.NaN() }
