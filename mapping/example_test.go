package mapping_test

import (
	"fmt"
	"sort"

	"github.com/ionix/ionixsnow/ionix"
	"github.com/ionix/ionixsnow/mapping"
)

func ExampleToRecord() {
	item := ionix.ActionItem{
		ID:            "AI-1001",
		Title:         "Expired TLS certificate on mail.example.com",
		Summary:       "The TLS certificate served by the host has expired.",
		Asset:         "mail.example.com",
		AssetType:     "certificate",
		Type:          "PKI",
		Urgency:       9.3,
		FirstOpenedAt: "2024-05-01T23:30:00-05:00",
	}
	record, err := mapping.ToRecord(item, mapping.DefaultOptions())
	if err != nil {
		fmt.Println(err)
		return
	}
	fields := make([]string, 0, len(record))
	for field := range record {
		fields = append(fields, field)
	}
	sort.Strings(fields)
	for _, field := range fields {
		fmt.Printf("%s: %q\n", field, record[field])
	}
	// Output:
	// u_body: "The TLS certificate served by the host has expired.\n\nAsset: mail.example.com (certificate)\nCategory: PKI\nIONIX urgency: 9.3 of 10 (ServiceNow urgency 1 - High)\nFirst opened: 2024-05-02 04:30:00 UTC (2024-05-01T23:30:00-05:00)\nIONIX action item: AI-1001"
	// u_category: "PKI"
	// u_correlation_id: "ionix:AI-1001"
	// u_impact: "2"
	// u_name: "Expired TLS certificate on mail.example.com"
	// u_opening_date: "2024-05-02 04:30:00"
	// u_urgency: "1"
}

func ExampleFilter() {
	filter := mapping.Filter{Categories: []string{"Vulnerability", "email security"}, UrgencyThreshold: 7}
	fmt.Println(filter.FilterSubjects(ionix.DefaultSubjectPrefix))

	for _, item := range []ionix.ActionItem{
		{Type: "Vulnerability", Urgency: 7.0},
		{Type: "Email Security", Urgency: 6.9},
		{Type: "DNS", Urgency: 10},
	} {
		ok, reason := filter.Allows(item)
		fmt.Printf("%s %v: ok=%v reason=%q\n", item.Type, item.Urgency, ok, reason)
	}
	// Output:
	// [ionix.action_items.*.vulnerability ionix.action_items.*.email_security]
	// Vulnerability 7: ok=true reason=""
	// Email Security 6.9: ok=false reason="urgency"
	// DNS 10: ok=false reason="category"
}

func ExampleUrgency() {
	for _, u := range []float64{10, 9.0, 8.99, 7.0, 6.99, 0} {
		fmt.Println(u, mapping.Urgency(u))
	}
	// Output:
	// 10 1
	// 9 1
	// 8.99 2
	// 7 2
	// 6.99 3
	// 0 3
}

func ExampleOpeningDate() {
	date, err := mapping.OpeningDate("2024-05-01T23:30:00-05:00")
	fmt.Println(date, err)
	// Output:
	// 2024-05-02 04:30:00 <nil>
}
