// Package file is pith's file plugin (Pulp's pulp_file): remotes that sync a
// PULP_MANIFEST, repositories of files, publications that write the manifest
// and distributions that serve them.
package file

import (
	"context"
	"log/slog"
	"time"

	"github.com/pith-project/pith/internal/api"
	"github.com/pith-project/pith/internal/content"
	"github.com/pith-project/pith/internal/coreapi"
	"github.com/pith-project/pith/internal/repository"
	"github.com/pith-project/pith/internal/storage"
	"github.com/pith-project/pith/internal/store"
	"github.com/pith-project/pith/internal/tasking"
)

// Type is the pulp_type of every file-plugin model.
const Type = "file.file"

// Collections of the file plugin.
const (
	RemotesPath       = api.Root + "remotes/file/file/"
	RepositoriesPath  = api.Root + "repositories/file/file/"
	ContentPath       = api.Root + "content/file/files/"
	PublicationsPath  = api.Root + "publications/file/file/"
	DistributionsPath = api.Root + "distributions/file/file/"
	ACSPath           = api.Root + "acs/file/file/"
)

// Deps are what the plugin needs from the core.
type Deps struct {
	Store   *store.Store
	Storage storage.Backend
	Tasks   *tasking.Manager
	Log     *slog.Logger
	Core    *coreapi.Deps
	// TempDir holds temporary files (downloaded manifests); it should be on
	// the storage filesystem.
	TempDir string
	// AllowedImportPaths bounds file:// remotes and file_url uploads.
	AllowedImportPaths []string
	// ContentOrigin and ContentPathPrefix build distributions' base_url.
	ContentOrigin     string
	ContentPathPrefix string
	// AutoPublish publishes a new version of a repository with autopublish
	// inside the task that created it.
	AutoPublish func(ctx context.Context, d *Deps, t *tasking.Task, repo *repository.Repo, v *repository.VersionRow) error
	// PublicationRetention is how long a distribution keeps serving the
	// files of a publication it no longer serves (0: content.DefaultRetention).
	PublicationRetention time.Duration
}

// retention is the effective PublicationRetention.
func (d *Deps) retention() time.Duration {
	if d.PublicationRetention > 0 {
		return d.PublicationRetention
	}
	return content.DefaultRetention
}

// Register adds the plugin's routes and task functions.
func Register(s *api.Server, d *Deps) {
	s.Register(remoteRoutes(d)...)
	s.Register(repositoryRoutes(d)...)
	s.Register(versionRoutes(d)...)
	s.Register(downloadVersionRoutes(d)...)
	s.Register(contentRoutes(d)...)
	s.Register(publicationRoutes(d)...)
	s.Register(distributionRoutes(d)...)
	s.Register(acsRoutes(d)...)
	RegisterTaskFuncs(d)
}

// RegisterTaskFuncs registers the plugin's task functions.
func RegisterTaskFuncs(d *Deps) {
	if d.AutoPublish == nil {
		d.AutoPublish = AutoPublish
	}
	if d.Core.Repairer == nil {
		d.Core.Repairer = repairer{d}
	}
	if d.Core.Content == nil {
		d.Core.Content = contentOrphans{d}
	}
	registerRemoteTasks(d)
	registerRepositoryTasks(d)
	registerContentTasks(d)
	registerPublishTasks(d)
	registerACSTasks(d)
	d.Tasks.Register(DownloadVersionTask, d.runDownloadVersion)
}
