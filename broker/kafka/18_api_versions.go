package kafka

import (
	"github.com/twmb/franz-go/pkg/kmsg"
)

// handleAPIVersions lists the APIs and versions in supportedAPIs. Clients
// send it first on every connection and use the minimum of their and our
// maximum version for each API.
func handleAPIVersions(cx *reqCtx, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.ApiVersionsRequest)
	resp := req.ResponseKind().(*kmsg.ApiVersionsResponse)
	resp.ApiKeys = apiKeys(&cx.s.apis)
	return resp, nil
}

func apiKeys(apis *apiTable) []kmsg.ApiVersionsResponseApiKey {
	keys := make([]kmsg.ApiVersionsResponseApiKey, 0, len(apis.sorted))
	for _, a := range apis.sorted {
		k := kmsg.NewApiVersionsResponseApiKey()
		k.ApiKey, k.MinVersion, k.MaxVersion = a.key, a.min, a.max
		keys = append(keys, k)
	}
	return keys
}
