package deploy

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	corev1 "k8s.io/api/core/v1"
)

var (
	confVarRef = regexp.MustCompile(`\$([A-Za-z_][A-Za-z0-9_]*)`)
	confVarDef = regexp.MustCompile(`(?m)^([A-Za-z_][A-Za-z0-9_]*)\s*[=:]`)
)

// natsConfig writes the NATS configuration an overlay mounts into a
// directory laid out like the pod's, and returns the config file's path in
// it, the container and the StatefulSet.
func natsConfig(t *testing.T, r *Rendered) (file string, c corev1.Container, sts *statefulSetT) {
	t.Helper()
	sts = one[*statefulSetT](t, r, "nats")
	c = container(t, &sts.Spec.Template.Spec, "nats")
	if len(c.Args) != 2 || c.Args[0] != "--config" {
		t.Fatalf("%s: nats args %v, want --config <file>", r.Name, c.Args)
	}
	var cmName string
	for _, v := range sts.Spec.Template.Spec.Volumes {
		if v.ConfigMap != nil {
			for _, m := range c.VolumeMounts {
				if m.Name == v.Name && m.MountPath == path.Dir(c.Args[1]) {
					cmName = v.ConfigMap.Name
				}
			}
		}
	}
	cm, ok := r.configMaps()[cmName]
	if !ok {
		t.Fatalf("%s: %s is not in a mounted ConfigMap", r.Name, c.Args[1])
	}
	dir := t.TempDir()
	for name, data := range cm.Data {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	file = filepath.Join(dir, path.Base(c.Args[1]))
	if _, err := os.Stat(file); err != nil {
		t.Fatalf("%s: ConfigMap %s has no %s", r.Name, cmName, path.Base(c.Args[1]))
	}
	return file, c, sts
}

// TestNATSConfig parses each overlay's NATS configuration with nats-server's
// own parser, in the environment the pod gives it (every $VARIABLE the files
// reference must be set by the container), and checks it against the
// StatefulSet, its Services and its volumes.
func TestNATSConfig(t *testing.T) {
	for _, ov := range overlays {
		t.Run(ov, func(t *testing.T) {
			r := mustRender(t, ov)
			file, c, sts := natsConfig(t, r)
			env := r.env(t, c)

			// Every variable the files reference is either defined in them or
			// set by the container.
			defined := map[string]bool{}
			var text strings.Builder
			files, _ := filepath.Glob(filepath.Join(filepath.Dir(file), "*"))
			for _, f := range files {
				b, err := os.ReadFile(f)
				if err != nil {
					t.Fatal(err)
				}
				for _, m := range confVarDef.FindAllStringSubmatch(string(b), -1) {
					defined[m[1]] = true
				}
				text.Write(stripQuoted(b))
			}
			for _, m := range confVarRef.FindAllStringSubmatch(text.String(), -1) {
				if !defined[m[1]] {
					if _, ok := env[m[1]]; !ok {
						t.Errorf("the NATS config references $%s, which the nats container does not set", m[1])
					}
				}
			}
			for name, v := range env {
				val := v.Value
				switch v.Source {
				case "secret":
					val = fakeSecret(v.Secret)
				case "field":
					val = sts.Name + "-0"
				}
				t.Setenv(name, val)
			}

			opts, err := server.ProcessConfigFile(file)
			if err != nil {
				t.Fatalf("nats-server rejects the %s configuration: %v", ov, err)
			}
			if opts.ServerName != sts.Name+"-0" {
				t.Errorf("server_name = %q, want the pod name", opts.ServerName)
			}
			ports := map[string]int32{}
			for _, p := range c.Ports {
				ports[p.Name] = p.ContainerPort
			}
			if int32(opts.Port) != ports["client"] || int32(opts.HTTPPort) != ports["monitor"] {
				t.Errorf("client/monitor ports %d/%d, container ports %v", opts.Port, opts.HTTPPort, ports)
			}
			if !opts.JetStream {
				t.Fatalf("JetStream is not enabled")
			}
			mounts := map[string]string{}
			for _, m := range c.VolumeMounts {
				mounts[m.Name] = m.MountPath
			}
			if len(sts.Spec.VolumeClaimTemplates) != 1 {
				t.Fatalf("want one volume claim template, got %d", len(sts.Spec.VolumeClaimTemplates))
			}
			pvc := sts.Spec.VolumeClaimTemplates[0]
			if mp := mounts[pvc.Name]; mp == "" || !strings.HasPrefix(opts.StoreDir, mp+"/") {
				t.Errorf("store_dir %s is not on the PersistentVolume (mounted at %q)", opts.StoreDir, mp)
			}
			size := pvc.Spec.Resources.Requests[corev1.ResourceStorage]
			if opts.JetStreamMaxStore <= 0 || opts.JetStreamMaxStore >= size.Value() {
				t.Errorf("max_file_store %d must be set below the volume's %s", opts.JetStreamMaxStore, size.String())
			}
			// readOnlyRootFilesystem: the pid file must be on a writable volume,
			// and preStop signals lame duck mode through it.
			var pidVolume bool
			for _, v := range sts.Spec.Template.Spec.Volumes {
				if v.EmptyDir != nil && mounts[v.Name] == path.Dir(opts.PidFile) {
					pidVolume = true
				}
			}
			if !pidVolume {
				t.Errorf("pid_file %s is not on an emptyDir volume", opts.PidFile)
			}
			if c.Lifecycle == nil || c.Lifecycle.PreStop == nil || c.Lifecycle.PreStop.Exec == nil ||
				!strings.Contains(strings.Join(c.Lifecycle.PreStop.Exec.Command, " "), "ldm="+opts.PidFile) {
				t.Errorf("preStop must put the server in lame duck mode through %s", opts.PidFile)
			}
			tgps := time.Duration(deref64(sts.Spec.Template.Spec.TerminationGracePeriodSeconds)) * time.Second
			if opts.LameDuckDuration+opts.LameDuckGracePeriod >= tgps {
				t.Errorf("lame duck %s + %s does not fit terminationGracePeriodSeconds %s", opts.LameDuckGracePeriod, opts.LameDuckDuration, tgps)
			}
			// A full Twilio request (the ingester's MAX_BODY_BYTES) plus its
			// evidence headers must fit one message.
			_, ic := r.stage(t, "ingester")
			maxBody := int64(1 << 20)
			if v, ok := r.env(t, ic)["MAX_BODY_BYTES"]; ok {
				maxBody, _ = strconv.ParseInt(v.Value, 10, 64)
			}
			if int64(opts.MaxPayload) < maxBody+64<<10 {
				t.Errorf("max_payload %d is too small for a %d-byte body and its headers", opts.MaxPayload, maxBody)
			}

			replicas := int(deref(sts.Spec.Replicas))
			if replicas > 1 {
				headless := one[*corev1.Service](t, r, sts.Spec.ServiceName)
				if headless.Spec.ClusterIP != corev1.ClusterIPNone || !headless.Spec.PublishNotReadyAddresses {
					t.Errorf("service %s must be headless and publish not-ready addresses (cluster formation)", headless.Name)
				}
				if int32(opts.Cluster.Port) != ports["cluster"] || opts.Cluster.Name == "" {
					t.Errorf("cluster port %d (container %d), name %q", opts.Cluster.Port, ports["cluster"], opts.Cluster.Name)
				}
				var routes []string
				for _, u := range opts.Routes {
					routes = append(routes, u.Host)
				}
				var want []string
				for i := range replicas {
					want = append(want, fmt.Sprintf("%s-%d.%s:%d", sts.Name, i, sts.Spec.ServiceName, ports["cluster"]))
				}
				if strings.Join(routes, " ") != strings.Join(want, " ") {
					t.Errorf("routes %v, want one per replica %v", routes, want)
				}
			} else if opts.Cluster.Port != 0 || len(opts.Routes) > 0 {
				t.Errorf("a single server must not be configured as a cluster (JetStream would wait for peers)")
			}

			users := map[string]*server.User{}
			for _, u := range opts.Users {
				users[u.Username] = u
			}
			for _, name := range secretRefs["zen-nats-users"] {
				u, ok := users[name]
				if !ok {
					t.Errorf("no NATS user %s", name)
					continue
				}
				if u.Password != fakeSecret(&corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "zen-nats-users"}, Key: name}) {
					t.Errorf("user %s: password is not the zen-nats-users key %s", name, name)
				}
				// admin is unrestricted in the pipeline's account; system
				// is the system account's only user (`nats server …`).
				unrestricted := name == "admin" || name == "system"
				if unrestricted != (u.Permissions == nil) {
					t.Errorf("user %s: permissions %v: only admin and system are unrestricted", name, u.Permissions)
				}
				inSystem := u.Account != nil && u.Account.Name == opts.SystemAccount
				if (name == "system") != inSystem {
					t.Errorf("user %s: account %v, system account %q: only the user system may be in it", name, u.Account, opts.SystemAccount)
				}
			}
			if opts.SystemAccount != "SYS" {
				t.Errorf("system_account %q, want SYS (for `nats server …`)", opts.SystemAccount)
			}
			if len(users) != len(secretRefs["zen-nats-users"]) {
				t.Errorf("users %v, want exactly %v", sortedKeys(users), secretRefs["zen-nats-users"])
			}
			if opts.NoAuthUser != "" {
				t.Errorf("no_auth_user %q lets clients in without credentials", opts.NoAuthUser)
			}
		})
	}
}

// stripQuoted blanks quoted strings and comments, where $ is literal
// ("$JS.API…").
func stripQuoted(b []byte) []byte {
	s := regexp.MustCompile(`"[^"\n]*"|#[^\n]*|//[^\n]*`).ReplaceAll(b, nil)
	return s
}

func deref64(p *int64) int64 {
	if p == nil {
		return 30
	}
	return *p
}
