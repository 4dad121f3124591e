package coreapi

import (
	"github.com/pith-project/pith/internal/api"
)

// SigningServicesPath is the signing services collection.
const SigningServicesPath = api.Root + "signing-services/"

// SigningServiceResponse is a signing service. pith has none configured
// yet; the endpoints exist so clients that list them keep working.
type SigningServiceResponse struct {
	api.Base
	Name              string `json:"name" api:"required"`
	PublicKey         string `json:"public_key" api:"required"`
	PubkeyFingerprint string `json:"pubkey_fingerprint" api:"required"`
	Script            string `json:"script" api:"required"`
}

func signingRoutes() []*api.Route {
	return []*api.Route{
		{OperationID: "signing_services_list", Method: "GET", Path: SigningServicesPath, Tag: "Signing-Services",
			Summary: "List signing services", List: true, Response: SigningServiceResponse{},
			Query: append((&api.FilterSet{}).Params(), api.Param{Name: "name", Type: "string"}),
			Handle: func(c *api.Ctx) (any, error) {
				limit, offset, err := c.Paging()
				if err != nil {
					return nil, err
				}
				return c.Page(0, limit, offset, []SigningServiceResponse{}), nil
			}},
		{OperationID: "signing_services_read", Method: "GET", Path: SigningServicesPath + "{pulp_id}/", Href: "signing_service_href",
			Tag: "Signing-Services", Summary: "Inspect a signing service", Response: SigningServiceResponse{},
			Handle: func(c *api.Ctx) (any, error) { return nil, api.NotFound() }},
	}
}
