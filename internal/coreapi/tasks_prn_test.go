package coreapi

import "testing"

// Task resource records and filters turn hrefs into Pulp's PRNs; each
// collection's model label must match the PRN its resources report.
func TestHrefPRN(t *testing.T) {
	const id = "01a237ab-dec6-7378-8b8f-380eb47b1884"
	for href, want := range map[string]string{
		"/pulp/api/v3/tasks/" + id + "/":                               "prn:core.task:" + id,
		"/pulp/api/v3/task-groups/" + id + "/":                         "prn:core.taskgroup:" + id,
		"/pulp/api/v3/workers/" + id + "/":                             "prn:core.appstatus:" + id,
		"/pulp/api/v3/artifacts/" + id + "/":                           "prn:core.artifact:" + id,
		"/pulp/api/v3/uploads/" + id + "/":                             "prn:core.upload:" + id,
		"/pulp/api/v3/repositories/file/file/" + id + "/":              "prn:file.filerepository:" + id,
		"/pulp/api/v3/remotes/file/file/" + id + "/":                   "prn:file.fileremote:" + id,
		"/pulp/api/v3/publications/file/file/" + id + "/":              "prn:file.filepublication:" + id,
		"/pulp/api/v3/distributions/file/file/" + id + "/":             "prn:file.filedistribution:" + id,
		"/pulp/api/v3/content/file/files/" + id + "/":                  "prn:file.filecontent:" + id,
		"/pulp/api/v3/acs/file/file/" + id + "/":                       "prn:file.filealternatecontentsource:" + id,
		"/pulp/api/v3/contentguards/core/header/" + id + "/":           "prn:core.headercontentguard:" + id,
		"/pulp/api/v3/contentguards/core/content_redirect/" + id + "/": "prn:core.contentredirectcontentguard:" + id,
		"/pulp/api/v3/contentguards/core/composite/" + id + "/":        "prn:core.compositecontentguard:" + id,
		// Versions are named by number in hrefs: only the store knows their id.
		"/pulp/api/v3/repositories/file/file/" + id + "/versions/1/": "",
		"pdrn:default:orphans": "",
	} {
		if got := hrefPRN(href); got != want {
			t.Errorf("hrefPRN(%s) = %q, want %q", href, got, want)
		}
	}
}
