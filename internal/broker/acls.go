package broker

// The ACL APIs (29-31). Without an authorizer (authorizer.class.name
// unset) they answer as Kafka's broker does then: each request, creation
// or filter fails with SECURITY_DISABLED, so admin clients report that
// ACLs are off. With one, CreateAcls and DeleteAcls are forwarded to the
// active controller, which keeps the ACLs in the metadata log (Kafka's
// AclControlManager), and DescribeAcls answers from this broker's image.

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregor-dev/gregor/internal/auth"
	"github.com/gregor-dev/gregor/internal/metadata"
	"github.com/gregor-dev/gregor/internal/server"
)

const noAuthorizer = "No Authorizer is configured."

// errInvalidACLRequest is an ACL the broker refuses before the controller
// sees it (INVALID_REQUEST).
var errInvalidACLRequest = errors.New("broker: invalid ACL")

func aclFilter(rt kmsg.ACLResourceType, name *string, pt kmsg.ACLResourcePatternType, principal, host *string, op kmsg.ACLOperation, perm kmsg.ACLPermissionType) metadata.ACLFilter {
	return metadata.ACLFilter{ResourceType: int8(rt), ResourceName: name, PatternType: int8(pt),
		Principal: principal, Host: host, Operation: int8(op), Permission: int8(perm)}
}

func handleDescribeAcls(b *Broker, ctx context.Context, sreq *server.Request) server.Completion {
	req := sreq.Body.(*kmsg.DescribeACLsRequest)
	resp := req.ResponseKind().(*kmsg.DescribeACLsResponse)
	if b.authz == nil {
		resp.ErrorCode = kerr.SecurityDisabled.Code
		resp.ErrorMessage = kmsg.StringPtr(noAuthorizer)
		return done(resp)
	}
	f := aclFilter(req.ResourceType, req.ResourceName, req.ResourcePatternType, req.Principal, req.Host, req.Operation, req.PermissionType)
	if !metadata.KnownACLCodes(f.ResourceType, f.PatternType, f.Operation, f.Permission) {
		resp.ErrorCode = kerr.InvalidRequest.Code
		resp.ErrorMessage = kmsg.StringPtr("the filter names an UNKNOWN resource type, pattern type, operation or permission")
		return done(resp)
	}
	type resource struct {
		rt   int8
		name string
		pt   int8
	}
	byResource := map[resource][]metadata.ACL{}
	for _, a := range b.image().ACLs {
		if f.Matches(a) {
			r := resource{a.ResourceType, a.ResourceName, a.PatternType}
			byResource[r] = append(byResource[r], a)
		}
	}
	for _, r := range slices.SortedFunc(maps.Keys(byResource), func(x, y resource) int {
		return cmp.Or(cmp.Compare(x.rt, y.rt), cmp.Compare(x.name, y.name), cmp.Compare(x.pt, y.pt))
	}) {
		rr := kmsg.NewDescribeACLsResponseResource()
		rr.ResourceType, rr.ResourceName, rr.ResourcePatternType = kmsg.ACLResourceType(r.rt), r.name, kmsg.ACLResourcePatternType(r.pt)
		acls := byResource[r]
		slices.SortFunc(acls, func(x, y metadata.ACL) int {
			return cmp.Or(cmp.Compare(x.Principal, y.Principal), cmp.Compare(x.Host, y.Host), cmp.Compare(x.Operation, y.Operation), cmp.Compare(x.Permission, y.Permission))
		})
		for _, a := range acls {
			ra := kmsg.NewDescribeACLsResponseResourceACL()
			ra.Principal, ra.Host = a.Principal, a.Host
			ra.Operation, ra.PermissionType = kmsg.ACLOperation(a.Operation), kmsg.ACLPermissionType(a.Permission)
			rr.ACLs = append(rr.ACLs, ra)
		}
		resp.Resources = append(resp.Resources, rr)
	}
	return done(resp)
}

func handleCreateAcls(b *Broker, ctx context.Context, sreq *server.Request) server.Completion {
	req := sreq.Body.(*kmsg.CreateACLsRequest)
	resp := req.ResponseKind().(*kmsg.CreateACLsResponse)
	errs := make([]error, len(req.Creations))
	if b.authz == nil {
		for i := range errs {
			errs[i] = kerr.SecurityDisabled
		}
	} else {
		var acls []metadata.ACL
		var at []int
		for i, c := range req.Creations {
			switch {
			case c.ResourceType == kmsg.ACLResourceTypeCluster && c.ResourceName != auth.ClusterName:
				errs[i] = fmt.Errorf("%w: The only valid name for the CLUSTER resource is %s", errInvalidACLRequest, auth.ClusterName)
			case c.ResourceName == "":
				errs[i] = fmt.Errorf("%w: Invalid empty resource name", errInvalidACLRequest)
			default:
				acls = append(acls, metadata.ACL{ResourceType: int8(c.ResourceType), ResourceName: c.ResourceName,
					PatternType: int8(c.ResourcePatternType), Principal: c.Principal, Host: c.Host,
					Operation: int8(c.Operation), Permission: int8(c.PermissionType)})
				at = append(at, i)
			}
		}
		if len(acls) > 0 {
			cerrs, err := b.ctrl.CreateACLs(ctx, acls)
			for k, i := range at {
				errs[i] = cmp.Or(err, cerrs[k])
			}
		}
	}
	for _, err := range errs {
		r := kmsg.NewCreateACLsResponseResult()
		if err != nil {
			r.ErrorCode, r.ErrorMessage = b.errorCode(err), errorMessage(err)
			if errors.Is(err, kerr.SecurityDisabled) {
				r.ErrorMessage = kmsg.StringPtr(noAuthorizer)
			}
		}
		resp.Results = append(resp.Results, r)
	}
	return done(resp)
}

func handleDeleteAcls(b *Broker, ctx context.Context, sreq *server.Request) server.Completion {
	req := sreq.Body.(*kmsg.DeleteACLsRequest)
	resp := req.ResponseKind().(*kmsg.DeleteACLsResponse)
	if b.authz == nil {
		for range req.Filters {
			r := kmsg.NewDeleteACLsResponseResult()
			r.ErrorCode = kerr.SecurityDisabled.Code
			r.ErrorMessage = kmsg.StringPtr(noAuthorizer)
			resp.Results = append(resp.Results, r)
		}
		return done(resp)
	}
	filters := make([]metadata.ACLFilter, len(req.Filters))
	for i, f := range req.Filters {
		filters[i] = aclFilter(f.ResourceType, f.ResourceName, f.ResourcePatternType, f.Principal, f.Host, f.Operation, f.PermissionType)
	}
	matched, errs, err := b.ctrl.DeleteACLs(ctx, filters)
	for i := range req.Filters {
		r := kmsg.NewDeleteACLsResponseResult()
		if e := cmp.Or(err, errs[i]); e != nil {
			r.ErrorCode, r.ErrorMessage = b.errorCode(e), errorMessage(e)
		} else {
			for _, a := range matched[i] {
				m := kmsg.NewDeleteACLsResponseResultMatchingACL()
				m.ResourceType, m.ResourceName, m.ResourcePatternType = kmsg.ACLResourceType(a.ResourceType), a.ResourceName, kmsg.ACLResourcePatternType(a.PatternType)
				m.Principal, m.Host = a.Principal, a.Host
				m.Operation, m.PermissionType = kmsg.ACLOperation(a.Operation), kmsg.ACLPermissionType(a.Permission)
				r.MatchingACLs = append(r.MatchingACLs, m)
			}
		}
		resp.Results = append(resp.Results, r)
	}
	return done(resp)
}
