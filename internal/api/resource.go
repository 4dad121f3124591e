package api

import (
	"strings"
	"time"

	"github.com/pith-project/pith/internal/store"
)

// Base carries the fields every Pulp resource has.
type Base struct {
	PulpHref        string    `json:"pulp_href" api:"readonly"`
	PRN             string    `json:"prn" api:"readonly" doc:"The Pulp Resource Name (PRN)."`
	PulpCreated     time.Time `json:"pulp_created" api:"readonly" doc:"Timestamp of creation."`
	PulpLastUpdated time.Time `json:"pulp_last_updated" api:"readonly" doc:"Timestamp of the last time this resource was updated."`
}

// NewBase fills Base for a row.
func NewBase(href, prnType, id string, created, lastUpdated int64) Base {
	return Base{
		PulpHref:        href,
		PRN:             "prn:" + prnType + ":" + id,
		PulpCreated:     store.Time(created),
		PulpLastUpdated: store.Time(lastUpdated),
	}
}

// Href joins a collection path and an id into a detail href.
func Href(collection, id string) string { return collection + id + "/" }

// IDFromHref extracts the id from a detail href of collection, accepting
// a PRN of the given type too. It returns "" if ref names something else.
func IDFromHref(ref, collection, prnType string) string {
	if rest, ok := strings.CutPrefix(ref, "prn:"+prnType+":"); ok {
		if store.ValidID(rest) {
			return rest
		}
		return ""
	}
	if i := strings.Index(ref, Root); i > 0 { // absolute URL
		ref = ref[i:]
	}
	rest, ok := strings.CutPrefix(ref, collection)
	if !ok {
		return ""
	}
	id := strings.TrimSuffix(rest, "/")
	if !store.ValidID(id) {
		return ""
	}
	return id
}
