package file

import (
	"strconv"
	"strings"

	"github.com/pith-project/pith/internal/api"
)

// PRN types of the plugin's models.
const (
	PRNRemote       = "file.fileremote"
	PRNRepository   = "file.filerepository"
	PRNContent      = "file.filecontent"
	PRNPublication  = "file.filepublication"
	PRNDistribution = "file.filedistribution"
	PRNVersion      = "core.repositoryversion"
)

// RepoHref is a repository's href.
func RepoHref(id string) string { return api.Href(RepositoriesPath, id) }

// VersionHref is a repository version's href.
func VersionHref(repoID string, number int) string {
	return RepoHref(repoID) + "versions/" + strconv.Itoa(number) + "/"
}

// ContentHref is a file content unit's href.
func ContentHref(id string) string { return api.Href(ContentPath, id) }

// RemoteHref is a remote's href.
func RemoteHref(id string) string { return api.Href(RemotesPath, id) }

// PublicationHref is a publication's href.
func PublicationHref(id string) string { return api.Href(PublicationsPath, id) }

// DistributionHref is a distribution's href.
func DistributionHref(id string) string { return api.Href(DistributionsPath, id) }

// RepoPRN is the resource name tasks lock for a repository.
func RepoPRN(id string) string { return "prn:" + PRNRepository + ":" + id }

// RemotePRN is the resource name tasks lock for a remote.
func RemotePRN(id string) string { return "prn:" + PRNRemote + ":" + id }

// ParseVersionHref splits a repository version href (or an absolute URL of
// one) into repository id and number.
func ParseVersionHref(href string) (repoID string, number int, ok bool) {
	if i := strings.Index(href, api.Root); i > 0 {
		href = href[i:]
	}
	rest, found := strings.CutPrefix(href, RepositoriesPath)
	if !found {
		return "", 0, false
	}
	parts := strings.Split(strings.TrimSuffix(rest, "/"), "/")
	if len(parts) != 3 || parts[1] != "versions" {
		return "", 0, false
	}
	n, err := strconv.Atoi(parts[2])
	if err != nil || n < 0 {
		return "", 0, false
	}
	id := api.IDFromHref(RepoHref(parts[0]), RepositoriesPath, PRNRepository)
	if id == "" {
		return "", 0, false
	}
	return id, n, true
}
