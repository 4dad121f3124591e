package coreapi

import (
	"context"
	"net/http"
	"time"

	"github.com/pith-project/pith/internal/api"
	"github.com/pith-project/pith/internal/storage"
)

// VersionResponse describes one component.
type VersionResponse struct {
	Component        string `json:"component" api:"required"`
	Version          string `json:"version" api:"required"`
	Package          string `json:"package" api:"required"`
	Module           string `json:"module" api:"required"`
	DomainCompatible bool   `json:"domain_compatible" api:"required"`
}

// AppStatusResponse is an online app.
type AppStatusResponse struct {
	Name          string            `json:"name" api:"readonly"`
	LastHeartbeat time.Time         `json:"last_heartbeat" api:"readonly"`
	Versions      map[string]string `json:"versions" api:"readonly"`
}

// DatabaseConnectionResponse reports the database.
type DatabaseConnectionResponse struct {
	Connected bool `json:"connected" api:"required"`
}

// RedisConnectionResponse reports Redis (pith needs none).
type RedisConnectionResponse struct {
	Connected bool `json:"connected" api:"required"`
}

// StorageResponse reports storage usage in bytes.
type StorageResponse struct {
	Total *int64 `json:"total" api:"required,nullable"`
	Used  *int64 `json:"used" api:"required,nullable"`
	Free  *int64 `json:"free" api:"required,nullable"`
}

// ContentSettingsResponse tells clients where content is served.
type ContentSettingsResponse struct {
	ContentOrigin     string `json:"content_origin" api:"required,nullable"`
	ContentPathPrefix string `json:"content_path_prefix" api:"required"`
}

// StatusResponse is GET status/.
type StatusResponse struct {
	Versions           []VersionResponse          `json:"versions" api:"required"`
	OnlineWorkers      []WorkerResponse           `json:"online_workers" api:"required"`
	OnlineAPIApps      []AppStatusResponse        `json:"online_api_apps" api:"required"`
	OnlineContentApps  []AppStatusResponse        `json:"online_content_apps" api:"required"`
	DatabaseConnection DatabaseConnectionResponse `json:"database_connection" api:"required"`
	RedisConnection    RedisConnectionResponse    `json:"redis_connection"`
	Storage            *StorageResponse           `json:"storage" api:"nullable"`
	ContentSettings    ContentSettingsResponse    `json:"content_settings" api:"required"`
	DomainEnabled      bool                       `json:"domain_enabled" api:"required"`
}

func statusRoutes(d *Deps) []*api.Route {
	return []*api.Route{
		{OperationID: "status_read", Method: "GET", Path: api.Root + "status/", Tag: "Status", Public: true,
			Summary: "Inspect status of Pulp", Response: StatusResponse{}, Handle: d.status},
		{OperationID: "livez_read", Method: "GET", Path: api.Root + "livez/", Tag: "Livez", Public: true,
			Summary: "Inspect liveness of Pulp's REST API.", Handle: func(c *api.Ctx) (any, error) { return nil, nil }},
	}
}

func (d *Deps) status(c *api.Ctx) (any, error) {
	resp := StatusResponse{
		Versions: []VersionResponse{
			{Component: "core", Version: CoreVersion, Package: "pulpcore", Module: "pulpcore.app", DomainCompatible: true},
			{Component: "file", Version: FileVersion, Package: "pulp-file", Module: "pulp_file.app", DomainCompatible: true},
		},
		OnlineWorkers:     []WorkerResponse{},
		OnlineAPIApps:     []AppStatusResponse{},
		OnlineContentApps: []AppStatusResponse{},
		ContentSettings:   ContentSettingsResponse{ContentOrigin: d.ContentOrigin, ContentPathPrefix: d.ContentPathPrefix},
	}
	ctx, cancel := context.WithTimeout(c, 3*time.Second)
	defer cancel()
	if err := d.Store.Ping(ctx); err == nil {
		resp.DatabaseConnection.Connected = true
		apps, err := d.Store.OnlineApps(ctx, d.Tasks.TTL())
		if err == nil {
			for _, a := range apps {
				switch a.AppType {
				case "worker":
					resp.OnlineWorkers = append(resp.OnlineWorkers, workerResponse(a))
				case "api":
					resp.OnlineAPIApps = append(resp.OnlineAPIApps, AppStatusResponse{Name: a.Name, LastHeartbeat: storeTime(a.LastHeartbeat), Versions: AppVersions()})
				case "content":
					resp.OnlineContentApps = append(resp.OnlineContentApps, AppStatusResponse{Name: a.Name, LastHeartbeat: storeTime(a.LastHeartbeat), Versions: AppVersions()})
				}
			}
		}
	}
	if u, ok := d.Storage.(storage.Usager); ok {
		if usage, err := u.Usage(ctx); err == nil {
			resp.Storage = &StorageResponse{Total: &usage.Total, Used: &usage.Used, Free: &usage.Free}
		}
	}
	if !resp.DatabaseConnection.Connected {
		c.SetStatus(http.StatusServiceUnavailable)
	}
	return resp, nil
}
