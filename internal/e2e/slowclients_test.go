package e2e

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestSlowAndIdleClientsDoNotExhaust: hundreds of idle connections and
// clients that trickle their headers neither block other clients nor stay
// open past the configured timeouts; oversized headers are refused.
func TestSlowAndIdleClientsDoNotExhaust(t *testing.T) {
	t.Setenv("PITH_READ_HEADER_TIMEOUT", "700ms")
	t.Setenv("PITH_IDLE_TIMEOUT", "700ms")
	backends(t, func(t *testing.T, p *instance) {
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for i := range 400 {
			c, err := net.Dial("tcp", p.addr)
			if err != nil {
				t.Fatalf("connection %d: %v", i, err)
			}
			conns = append(conns, c)
			if i%4 == 0 {
				// A slow loris: a request line, then nothing.
				io.WriteString(c, "GET /pulp/content/ HTTP/1.1\r\nHost: x\r\nX-Slow: ")
			}
		}
		// Others are served meanwhile.
		for range 5 {
			if r := p.get("/pulp/api/v3/status/"); r.code != 200 {
				t.Fatalf("status while 400 connections idle: %d", r.code)
			}
		}
		// Every idle or slow connection is closed by the server.
		for i, c := range conns {
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			_, err := io.ReadAll(c)
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatalf("connection %d still open after the timeouts", i)
			}
		}
		// Headers beyond the limit are refused. The server answers 431 and
		// closes while the client may still be writing, so the headers go
		// out from a goroutine over a raw connection whose write error is
		// expected, and the response is read at the same time.
		c, err := net.Dial("tcp", p.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		go func() {
			_, _ = io.WriteString(c, "GET /pulp/content/ HTTP/1.1\r\nHost: x\r\nX-Big: "+strings.Repeat("a", 200<<10)+"\r\n\r\n")
		}()
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("oversized headers: reading the answer: %v", err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Fatalf("oversized headers: %d", resp.StatusCode)
		}
	})
}
