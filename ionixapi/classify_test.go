package ionixapi

import (
	"errors"
	"fmt"
	"net/http"
	"testing"
)

// namedClass is the expected class of every status code net/http names,
// outside 2xx (which the content type decides).
var namedClass = map[int]class{
	http.StatusContinue:           classTransient,
	http.StatusSwitchingProtocols: classTransient,
	http.StatusProcessing:         classTransient,
	http.StatusEarlyHints:         classTransient,

	http.StatusMultipleChoices:   classRequest,
	http.StatusMovedPermanently:  classRequest,
	http.StatusFound:             classRequest,
	http.StatusSeeOther:          classRequest,
	http.StatusNotModified:       classRequest,
	http.StatusUseProxy:          classRequest,
	http.StatusTemporaryRedirect: classRequest,
	http.StatusPermanentRedirect: classRequest,

	http.StatusBadRequest:                   classRequest,
	http.StatusUnauthorized:                 classUnauthorized,
	http.StatusPaymentRequired:              classRequest,
	http.StatusForbidden:                    classUnauthorized,
	http.StatusNotFound:                     classNotFound,
	http.StatusMethodNotAllowed:             classRequest,
	http.StatusNotAcceptable:                classRequest,
	http.StatusProxyAuthRequired:            classRequest,
	http.StatusRequestTimeout:               classTransient,
	http.StatusConflict:                     classTransient,
	http.StatusGone:                         classRequest,
	http.StatusLengthRequired:               classRequest,
	http.StatusPreconditionFailed:           classRequest,
	http.StatusRequestEntityTooLarge:        classRequest,
	http.StatusRequestURITooLong:            classRequest,
	http.StatusUnsupportedMediaType:         classRequest,
	http.StatusRequestedRangeNotSatisfiable: classRequest,
	http.StatusExpectationFailed:            classRequest,
	http.StatusTeapot:                       classRequest,
	http.StatusMisdirectedRequest:           classRequest,
	http.StatusUnprocessableEntity:          classRequest,
	http.StatusLocked:                       classTransient,
	http.StatusFailedDependency:             classRequest,
	http.StatusTooEarly:                     classTransient,
	http.StatusUpgradeRequired:              classRequest,
	http.StatusPreconditionRequired:         classRequest,
	http.StatusTooManyRequests:              classTransient,
	http.StatusRequestHeaderFieldsTooLarge:  classRequest,
	http.StatusUnavailableForLegalReasons:   classRequest,

	http.StatusInternalServerError:           classTransient,
	http.StatusNotImplemented:                classTransient,
	http.StatusBadGateway:                    classTransient,
	http.StatusServiceUnavailable:            classTransient,
	http.StatusGatewayTimeout:                classTransient,
	http.StatusHTTPVersionNotSupported:       classTransient,
	http.StatusVariantAlsoNegotiates:         classTransient,
	http.StatusInsufficientStorage:           classTransient,
	http.StatusLoopDetected:                  classTransient,
	http.StatusNotExtended:                   classTransient,
	http.StatusNetworkAuthenticationRequired: classTransient,
}

var contentTypes = []struct {
	value string
	html  bool
}{
	{"application/json", false},
	{"application/json; charset=utf-8", false},
	{"", false},
	{"text/plain", false},
	{"text/html; charset=utf-8", true},
	{"TEXT/HTML", true},
	{"application/xhtml+xml", true},
	{"text/html;;bogus", true}, // unparsable, still HTML
}

func TestClassify(t *testing.T) {
	for code := 100; code <= 599; code++ {
		named := http.StatusText(code) != ""
		t.Run(fmt.Sprint(code), func(t *testing.T) {
			for _, ct := range contentTypes {
				var want class
				switch {
				case code >= 200 && code <= 299 && ct.html:
					want = classTransient // maintenance page
				case code >= 200 && code <= 299:
					want = classOK
				case named:
					c, ok := namedClass[code]
					if !ok {
						t.Fatalf("status %d (%s) has no expected class in the test", code, http.StatusText(code))
					}
					want = c
				case code < 200, code >= 500:
					want = classTransient
				default: // unnamed 3xx and 4xx
					want = classRequest
				}
				if got := classify(code, ct.value); got != want {
					t.Errorf("classify(%d, %q) = %v, want %v", code, ct.value, got, want)
				}
			}
		})
	}
	t.Run("outside 100..599", func(t *testing.T) {
		for _, code := range []int{0, -1, 99, 600, 999} {
			if got := classify(code, "application/json"); got != classTransient {
				t.Errorf("classify(%d) = %v, want transient", code, got)
			}
		}
	})
}

func TestClassKinds(t *testing.T) {
	sentinels := []error{ErrUnauthorized, ErrNotFound, ErrRequest, ErrUnavailable, ErrProtocol}
	for _, tt := range []struct {
		c    class
		want error
	}{
		{classOK, nil},
		{classTransient, ErrUnavailable},
		{classUnauthorized, ErrUnauthorized},
		{classNotFound, ErrNotFound},
		{classRequest, ErrRequest},
	} {
		t.Run(tt.c.String(), func(t *testing.T) {
			if got := tt.c.kind(); got != tt.want {
				t.Fatalf("kind() = %v, want %v", got, tt.want)
			}
			if tt.want == nil {
				return
			}
			err := fmt.Errorf("wrapped: %w", &Error{Kind: tt.want, List: Open})
			for _, s := range sentinels {
				if got := errors.Is(err, s); got != (s == tt.want) {
					t.Errorf("errors.Is(err, %v) = %v", s, got)
				}
			}
		})
	}
	if s := class(9).String(); s != "class(9)" {
		t.Errorf("class(9).String() = %q", s)
	}
}
