package ionix_test

import (
	"errors"
	"fmt"

	"github.com/ionix/ionixsnow/ionix"
)

func ExampleDecode() {
	item, err := ionix.Decode([]byte(`{
		"id": "AI-1001",
		"title": {"label": "Expired TLS certificate on mail.example.com"},
		"type": "PKI",
		"urgency": {"urgency": 7.5},
		"groups": [{"name": "Production"}]
	}`))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(item.Title)
	fmt.Println(item.Urgency)
	fmt.Println(string(item.Extra["groups"]))

	_, err = ionix.Decode([]byte(`{"id": "AI-1002", "title": "x", "type": "DNS", "urgency": "9.3"}`))
	fmt.Println(errors.Is(err, ionix.ErrInvalid), err)
	// Output:
	// Expired TLS certificate on mail.example.com
	// 7.5
	// [{"name":"Production"}]
	// true invalid action item "AI-1002": urgency is not a number (got a string)
}

func ExampleSubject() {
	fmt.Println(ionix.Subject(ionix.DefaultSubjectPrefix, ionix.EventOpened, "Email Security"))
	fmt.Println(ionix.CategoryToken("Email Security"))
	// Output:
	// ionix.action_items.opened.email_security
	// email_security
}

func ExampleMsgID() {
	item := ionix.ActionItem{ID: "AI-1001", Title: "Expired TLS certificate on mail.example.com", Type: "PKI", Urgency: 7.5}
	again := item // the same item, published again
	fmt.Println(ionix.MsgID(item, ionix.EventOpened) == ionix.MsgID(again, ionix.EventOpened))
	changed := item
	changed.Urgency = 9.1
	fmt.Println(ionix.MsgID(item, ionix.EventOpened) == ionix.MsgID(changed, ionix.EventOpened))
	// Output:
	// true
	// false
}

func ExampleKeyToken() {
	fmt.Println(ionix.KeyToken("5f3c2a1e-0b6d"))
	fmt.Println(ionix.KeyToken("acme/AI 7"))
	// Output:
	// 5f3c2a1e-0b6d
	// =YWNtZS9BSSA3
}
