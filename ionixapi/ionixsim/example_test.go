package ionixsim_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/ionix/ionixsnow/ionixapi/ionixsim"
)

func Example() {
	sim := ionixsim.New(ionixsim.Options{}) // token "ionix", account "acme"
	sim.SetOpen(
		ionixsim.Item("AI-1", "Expired TLS certificate on mail.example.com", "PKI", 7.5),
		ionixsim.Item("AI-2", "Open RDP on 203.0.113.45", "Network", 9.1),
	)
	sim.Close("AI-1", time.Date(2025, 4, 1, 12, 0, 0, 0, time.UTC))
	sim.FailNext(1, http.StatusServiceUnavailable)
	srv := httptest.NewServer(sim)
	defer srv.Close()

	for range 2 {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+ionixsim.ClosedPath+"?limit=10", nil)
		req.Header.Set("Authorization", "Bearer ionix")
		req.Header.Set("X-Account-Name", "acme")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			fmt.Println(err)
			return
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Println(resp.StatusCode, len(body) > 0)
	}
	for _, r := range sim.Requests() {
		fmt.Printf("%s limit=%s %d %q\n", r.Path, r.Query.Get("limit"), r.Status, r.Fault)
	}
	fmt.Println(ionixsim.ID(sim.Closed()[0]), len(sim.Open()))
	// Output:
	// 503 true
	// 200 true
	// /api/v1/remediation/action-items/closed/ limit=10 503 "status 503"
	// /api/v1/remediation/action-items/closed/ limit=10 200 ""
	// AI-1 1
}
