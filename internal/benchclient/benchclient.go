// Package benchclient is what the benchmarks share: a timing HTTP client,
// which measures time to first body byte and to the end of a GET, and a
// paced upstream, which serves a file at a set bandwidth.
package benchclient

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"
)

// TimedGet fetches url, returning the time to the first body byte and to
// the end. With hash it returns the body's sha256, else its length (a herd
// of clients in one process would otherwise spend the machine's cores
// hashing what the server already verified).
func TimedGet(c *http.Client, url string, hash bool) (ttfb, total time.Duration, sum string, err error) {
	start := time.Now()
	resp, err := c.Get(url)
	if err != nil {
		return 0, 0, "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, 0, "", fmt.Errorf("status %d", resp.StatusCode)
	}
	h := sha256.New()
	buf := make([]byte, 64<<10)
	first := true
	var size int64
	for {
		n, rerr := resp.Body.Read(buf)
		if n > 0 && first {
			ttfb, first = time.Since(start), false
		}
		size += int64(n)
		if hash {
			h.Write(buf[:n])
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return 0, 0, "", rerr
		}
	}
	if !hash {
		return ttfb, time.Since(start), strconv.FormatInt(size, 10), nil
	}
	return ttfb, time.Since(start), hex.EncodeToString(h.Sum(nil)), nil
}
