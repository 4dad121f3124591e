// Package coreapi serves pulpcore's own endpoints: status, tasks, task
// groups, workers, artifacts, uploads, orphan cleanup and repair.
package coreapi

import (
	"encoding/json"
	"log/slog"

	"github.com/pith-project/pith/internal/api"
	"github.com/pith-project/pith/internal/storage"
	"github.com/pith-project/pith/internal/store"
	"github.com/pith-project/pith/internal/tasking"
)

// Versions advertised to clients. pulp-glue gates features on them, so they
// name the pulpcore release whose API pith implements.
const (
	CoreVersion = "3.116.0"
	FileVersion = "3.116.0"
)

// Deps are what the endpoints need.
type Deps struct {
	Store             *store.Store
	Storage           storage.Backend
	Tasks             *tasking.Manager
	Log               *slog.Logger
	DataDir           string
	ContentOrigin     string
	ContentPathPrefix string
	// OrphanProtectionTime is the default for orphan cleanup, in minutes.
	OrphanProtectionTime int
	// Content lets orphan cleanup reach content units; nil until a content
	// type is installed.
	Content ContentOrphans
	// Repairer restores damaged artifacts; nil until remote sources exist.
	Repairer ArtifactRepairer

	mutators mutators
}

// Register adds every core route to s.
func Register(s *api.Server, d *Deps) {
	s.Register(statusRoutes(d)...)
	s.Register(docsRoutes(s)...)
	s.Register(taskRoutes(d)...)
	s.Register(workerRoutes(d)...)
	s.Register(artifactRoutes(d)...)
	s.Register(uploadRoutes(d)...)
	s.Register(orphanRoutes(d)...)
	s.Register(repairRoutes(d)...)
	s.Register(reclaimRoutes(d)...)
	s.Register(signingRoutes()...)
	RegisterTaskFuncs(d)
}

// RegisterTaskFuncs registers the core task functions with the manager.
func RegisterTaskFuncs(d *Deps) {
	registerUploadTasks(d)
	registerTaskTasks(d)
	registerGeneralTasks(d)
	registerOrphanTasks(d)
	registerRepairTasks(d)
	registerReclaimTasks(d)
}

// AppVersions is info.x-pulp-app-versions.
func AppVersions() map[string]string {
	return map[string]string{"core": CoreVersion, "file": FileVersion}
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }
