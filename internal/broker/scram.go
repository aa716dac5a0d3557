package broker

// SCRAM credentials (KIP-554): AlterUserScramCredentials (key 51),
// forwarded to the active controller, which keeps them in the metadata
// log; and DescribeUserScramCredentials (key 50), answered from this
// broker's image as Kafka's brokers answer from their metadata cache. The
// SASL logins that use them are the server's and auth's.

import (
	"context"
	"maps"
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregor-dev/gregor/internal/auth"
	"github.com/gregor-dev/gregor/internal/controller"
	"github.com/gregor-dev/gregor/internal/metadata"
	"github.com/gregor-dev/gregor/internal/server"
)

func handleAlterUserScramCredentials(b *Broker, ctx context.Context, sreq *server.Request) server.Completion {
	req := sreq.Body.(*kmsg.AlterUserSCRAMCredentialsRequest)
	resp := req.ResponseKind().(*kmsg.AlterUserSCRAMCredentialsResponse)
	var alts []controller.ScramAlteration
	for _, d := range req.Deletions {
		alts = append(alts, controller.ScramAlteration{
			ScramKey: metadata.ScramKey{User: d.Name, Mechanism: metadata.ScramMechanism(d.Mechanism)}, Delete: true,
		})
	}
	for _, u := range req.Upsertions {
		a := controller.ScramAlteration{
			ScramKey:   metadata.ScramKey{User: u.Name, Mechanism: metadata.ScramMechanism(u.Mechanism)},
			Iterations: u.Iterations, Salt: u.Salt, SaltedPassword: u.SaltedPassword,
		}
		if a.Mechanism.Name() != "" && len(u.SaltedPassword) > 0 {
			// Only the derived keys go to the metadata log, as in Kafka.
			a.StoredKey, a.ServerKey = auth.ScramKeys(a.Mechanism, u.SaltedPassword)
		}
		alts = append(alts, a)
	}
	results, err := b.ctrl.AlterUserScramCredentials(ctx, alts)
	if err != nil {
		// Nothing was applied: every user gets the error.
		results = results[:0]
		seen := map[string]bool{}
		for _, a := range alts {
			if !seen[a.User] {
				seen[a.User] = true
				results = append(results, controller.ScramResult{User: a.User, Err: err})
			}
		}
	}
	for _, r := range results {
		rr := kmsg.NewAlterUserSCRAMCredentialsResponseResult()
		rr.User = r.User
		if r.Err != nil {
			rr.ErrorCode, rr.ErrorMessage = b.errorCode(r.Err), errorMessage(r.Err)
		}
		resp.Results = append(resp.Results, rr)
	}
	return done(resp)
}

func handleDescribeUserScramCredentials(b *Broker, ctx context.Context, sreq *server.Request) server.Completion {
	req := sreq.Body.(*kmsg.DescribeUserSCRAMCredentialsRequest)
	resp := req.ResponseKind().(*kmsg.DescribeUserSCRAMCredentialsResponse)
	creds := b.image().ScramCredentials
	// No users named: every user with a credential. A user named twice is
	// answered once, with DUPLICATE_RESOURCE, as Kafka's ScramImage.
	var users []string
	dup := map[string]bool{}
	if len(req.Users) == 0 {
		set := map[string]bool{}
		for k := range creds {
			set[k.User] = true
		}
		users = slices.Sorted(maps.Keys(set))
	} else {
		for _, u := range req.Users {
			if _, seen := dup[u.Name]; seen {
				dup[u.Name] = true
				continue
			}
			dup[u.Name] = false
			users = append(users, u.Name)
		}
	}
	for _, user := range users {
		r := kmsg.NewDescribeUserSCRAMCredentialsResponseResult()
		r.User = user
		switch {
		case dup[user]:
			r.ErrorCode = kerr.DuplicateResource.Code
			r.ErrorMessage = kmsg.StringPtr("Cannot describe SCRAM credentials for the same user twice in a single request: " + user)
		default:
			for _, m := range metadata.ScramMechanisms {
				if c, ok := creds[metadata.ScramKey{User: user, Mechanism: m}]; ok {
					info := kmsg.NewDescribeUserSCRAMCredentialsResponseResultCredentialInfo()
					info.Mechanism, info.Iterations = int8(m), c.Iterations
					r.CredentialInfos = append(r.CredentialInfos, info)
				}
			}
			if len(r.CredentialInfos) == 0 {
				r.ErrorCode = kerr.ResourceNotFound.Code
				r.ErrorMessage = kmsg.StringPtr("Attempt to describe a user credential that does not exist: " + user)
			}
		}
		resp.Results = append(resp.Results, r)
	}
	return done(resp)
}
