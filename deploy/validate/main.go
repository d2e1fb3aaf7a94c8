// Command validate checks the deployment files against the real API types, so that a typo in a
// field name fails the build:
//
//	validate manifests DIR [COMPONENT...]  build DIR (the scorer's base or the relay's) with
//	                                       kustomize (plus components), decode
//	                                       every object strictly into its k8s.io/api (or
//	                                       Prometheus Operator, KEDA) type, check the cross-
//	                                       references (selectors, ports, names)
//	validate rules DIR                     print the PrometheusRule groups of DIR as a
//	                                       Prometheus rule file (for promtool)
//	validate dashboard FILE                check a Grafana dashboard: JSON, panels, queries
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	kedav1alpha1 "github.com/kedacore/keda/v2/apis/keda/v1alpha1"
	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

func main() {
	if len(os.Args) < 3 {
		fail("usage: validate manifests DIR [COMPONENT...] | rules DIR | dashboard FILE")
	}
	var err error
	switch os.Args[1] {
	case "manifests":
		err = validateManifests(os.Args[2], os.Args[3:])
	case "rules":
		err = printRules(os.Args[2])
	case "dashboard":
		err = validateDashboard(os.Args[2])
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fail(err.Error())
	}
}

func fail(msg string) {
	fmt.Fprintln(os.Stderr, "validate:", msg)
	os.Exit(1)
}

// build runs kustomize on dir, with the given components added (as an overlay would).
func build(dir string, components []string) ([][]byte, error) {
	fs := filesys.MakeFsOnDisk()
	target := dir
	if len(components) > 0 {
		// A throwaway overlay beside the base: kustomize takes only relative paths.
		base, err := filepath.Abs(dir)
		if err != nil {
			return nil, err
		}
		overlay, err := os.MkdirTemp(filepath.Dir(base), ".validate-overlay-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(overlay)
		k := "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - ../" + filepath.Base(base) + "\ncomponents:\n"
		for _, c := range components {
			abs, err := filepath.Abs(c)
			if err != nil {
				return nil, err
			}
			rel, err := filepath.Rel(overlay, abs)
			if err != nil {
				return nil, err
			}
			k += "  - " + rel + "\n"
		}
		if err := os.WriteFile(overlay+"/kustomization.yaml", []byte(k), 0o644); err != nil {
			return nil, err
		}
		target = overlay
	}
	opts := krusty.MakeDefaultOptions()
	// The ConfigMap comes from config/scorer.yaml, outside the base (one config file).
	opts.LoadRestrictions = types.LoadRestrictionsNone
	resources, err := krusty.MakeKustomizer(opts).Run(fs, target)
	if err != nil {
		return nil, fmt.Errorf("kustomize build %s: %w", dir, err)
	}
	var docs [][]byte
	for _, r := range resources.Resources() {
		y, err := r.AsYAML()
		if err != nil {
			return nil, err
		}
		docs = append(docs, y)
	}
	return docs, nil
}

type typeMeta struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name string `json:"name"`
	} `json:"metadata"`
}

// objects holds the decoded objects, by kind, for the cross-checks.
type objects struct {
	configMaps   map[string]*corev1.ConfigMap
	services     []*corev1.Service
	statefulSets []*appsv1.StatefulSet
	deployments  []*appsv1.Deployment
	pdbs         []*policyv1.PodDisruptionBudget
	monitors     []*monitoringv1.ServiceMonitor
	rules        []*monitoringv1.PrometheusRule
	scaled       []*kedav1alpha1.ScaledObject
	policies     []*networkingv1.NetworkPolicy
}

// decodeStrict decodes as the API server does in strict mode: field names are case-sensitive
// (encoding/json alone would accept "readinessprobe"), unknown and duplicate fields are errors.
func decodeStrict(doc []byte, into interface{}) error {
	j, err := yaml.YAMLToJSON(doc)
	if err != nil {
		return err
	}
	strict, err := kjson.UnmarshalStrict(j, into)
	if err != nil {
		return err
	}
	if len(strict) > 0 {
		msgs := make([]string, len(strict))
		for i, e := range strict {
			msgs[i] = e.Error()
		}
		return fmt.Errorf("%s", strings.Join(msgs, "; "))
	}
	return nil
}

func validateManifests(dir string, components []string) error {
	docs, err := build(dir, components)
	if err != nil {
		return err
	}
	o := objects{configMaps: map[string]*corev1.ConfigMap{}}
	var problems []string
	for _, doc := range docs {
		var tm typeMeta
		if err := yaml.Unmarshal(doc, &tm); err != nil {
			return err
		}
		where := tm.Kind + "/" + tm.Metadata.Name
		var target interface{}
		switch tm.APIVersion + " " + tm.Kind {
		case "v1 ConfigMap":
			cm := &corev1.ConfigMap{}
			o.configMaps[tm.Metadata.Name] = cm
			target = cm
		case "v1 Service":
			s := &corev1.Service{}
			o.services = append(o.services, s)
			target = s
		case "apps/v1 StatefulSet":
			s := &appsv1.StatefulSet{}
			o.statefulSets = append(o.statefulSets, s)
			target = s
		case "apps/v1 Deployment":
			d := &appsv1.Deployment{}
			o.deployments = append(o.deployments, d)
			target = d
		case "policy/v1 PodDisruptionBudget":
			p := &policyv1.PodDisruptionBudget{}
			o.pdbs = append(o.pdbs, p)
			target = p
		case "monitoring.coreos.com/v1 ServiceMonitor":
			m := &monitoringv1.ServiceMonitor{}
			o.monitors = append(o.monitors, m)
			target = m
		case "monitoring.coreos.com/v1 PrometheusRule":
			r := &monitoringv1.PrometheusRule{}
			o.rules = append(o.rules, r)
			target = r
		case "networking.k8s.io/v1 NetworkPolicy":
			n := &networkingv1.NetworkPolicy{}
			o.policies = append(o.policies, n)
			target = n
		case "keda.sh/v1alpha1 ScaledObject":
			s := &kedav1alpha1.ScaledObject{}
			o.scaled = append(o.scaled, s)
			target = s
		default:
			problems = append(problems, where+": no schema known for "+tm.APIVersion+" "+tm.Kind)
			continue
		}
		if err := decodeStrict(doc, target); err != nil {
			problems = append(problems, where+": "+err.Error())
		}
	}
	if len(problems) == 0 {
		problems = crossCheck(&o)
	}
	if len(problems) > 0 {
		return fmt.Errorf("%d problem(s):\n  %s", len(problems), strings.Join(problems, "\n  "))
	}
	fmt.Printf("validate: %d objects in %s are valid\n", len(docs), dir)
	return nil
}

// crossCheck finds references that do not resolve: what a schema cannot see. A directory
// holds either the scorer (one StatefulSet) or the relay (one Deployment).
func crossCheck(o *objects) []string {
	switch {
	case len(o.statefulSets) == 1 && len(o.deployments) == 0:
		return checkScorer(o)
	case len(o.deployments) == 1 && len(o.statefulSets) == 0:
		return checkRelay(o)
	}
	return []string{fmt.Sprintf("expected one StatefulSet (scorer) or one Deployment (relay), found %d and %d",
		len(o.statefulSets), len(o.deployments))}
}

func checkScorer(o *objects) []string {
	ss := o.statefulSets[0]
	var p []string
	if len(ss.Spec.VolumeClaimTemplates) == 0 {
		p = append(p, "StatefulSet has no volumeClaimTemplates: the state needs a volume per pod")
	}
	claims := map[string]bool{}
	for _, t := range ss.Spec.VolumeClaimTemplates {
		claims[t.Name] = true
	}
	// The scorer's shutdown: offsets sent to the transaction and the commit, each up to
	// kafka.timeout_ms (30 s), then the consumer's close.
	_, more := checkWorkload("StatefulSet", ss.Spec.Selector, ss.Spec.Template, claims, 75, o)
	p = append(p, more...)
	headless := false
	for _, s := range o.services {
		if s.Name == ss.Spec.ServiceName && s.Spec.ClusterIP == corev1.ClusterIPNone {
			headless = true
		}
	}
	if !headless {
		p = append(p, "the StatefulSet's serviceName "+ss.Spec.ServiceName+" is not a headless Service")
	}
	for _, s := range o.scaled {
		ref := s.Spec.ScaleTargetRef
		if ref == nil || ref.Kind != "StatefulSet" || ref.Name != ss.Name {
			p = append(p, "ScaledObject "+s.Name+" does not target the StatefulSet")
		}
		if ss.Spec.Replicas != nil {
			p = append(p, "the StatefulSet sets spec.replicas beside ScaledObject "+s.Name+
				": every apply would reset the autoscaler's count")
		}
		for _, t := range s.Spec.Triggers {
			if t.Type == "kafka" && t.Metadata["bootstrapServers"] != "" {
				p = append(p, "ScaledObject "+s.Name+" names brokers of its own (bootstrapServers): "+
					"use bootstrapServersFromEnv, so that it follows the service's setting")
			}
		}
	}
	return p
}

func checkRelay(o *objects) []string {
	d := o.deployments[0]
	// The relay drains requests in flight for relay.drain_timeout_ms (10 s), then flushes its
	// dead letters and commits, each of which may take kafka.timeout_ms (30 s).
	_, p := checkWorkload("Deployment", d.Spec.Selector, d.Spec.Template, nil, 70, o)
	if len(o.scaled) > 0 {
		p = append(p, "a ScaledObject beside the relay: scale it by partitions, not by lag")
	}
	return p
}

// checkWorkload checks a pod template and what refers to it: selector, grace period, volumes,
// ConfigMap references, probes and their ports, memory request; Services, PDBs,
// ServiceMonitors and PrometheusRules around it.
func checkWorkload(kind string, selector *metav1.LabelSelector, tmpl corev1.PodTemplateSpec,
	extraVolumes map[string]bool, minGrace int64, o *objects) (labels.Set, []string) {
	var p []string
	podLabels := labels.Set(tmpl.Labels)
	if selector == nil || !labels.SelectorFromSet(selector.MatchLabels).Matches(podLabels) {
		p = append(p, kind+" selector does not match its pod template labels")
	}
	if g := tmpl.Spec.TerminationGracePeriodSeconds; g == nil || *g < minGrace {
		p = append(p, fmt.Sprintf("%s terminationGracePeriodSeconds must cover the graceful shutdown (>= %d s)", kind, minGrace))
	}
	ports := map[string]int32{}
	volumes := map[string]bool{}
	for name := range extraVolumes {
		volumes[name] = true
	}
	for _, v := range tmpl.Spec.Volumes {
		volumes[v.Name] = true
		if v.ConfigMap != nil && o.configMaps[v.ConfigMap.Name] == nil {
			p = append(p, "volume "+v.Name+" references missing ConfigMap "+v.ConfigMap.Name)
		}
	}
	for _, c := range tmpl.Spec.Containers {
		p = append(p, checkContainer(c, volumes, ports, o)...)
	}
	servicePorts := map[string]bool{}
	for _, s := range o.services {
		if !labels.SelectorFromSet(s.Spec.Selector).Matches(podLabels) {
			p = append(p, "Service "+s.Name+" does not select the "+kind+"'s pods")
		}
		for _, port := range s.Spec.Ports {
			servicePorts[port.Name] = true
			if _, ok := ports[port.TargetPort.StrVal]; !ok {
				p = append(p, "Service "+s.Name+" targets unknown container port "+port.TargetPort.String())
			}
		}
	}
	for _, pdb := range o.pdbs {
		if !labels.SelectorFromSet(pdb.Spec.Selector.MatchLabels).Matches(podLabels) {
			p = append(p, "PodDisruptionBudget "+pdb.Name+" does not select the "+kind+"'s pods")
		}
	}
	for _, m := range o.monitors {
		for _, e := range m.Spec.Endpoints {
			if !servicePorts[e.Port] {
				p = append(p, "ServiceMonitor "+m.Name+" scrapes unknown Service port "+e.Port)
			}
		}
		matched := false
		for _, s := range o.services {
			if labels.SelectorFromSet(m.Spec.Selector.MatchLabels).Matches(labels.Set(s.Labels)) {
				matched = true
			}
		}
		if !matched {
			p = append(p, "ServiceMonitor "+m.Name+" selects no Service")
		}
	}
	if len(o.rules) == 0 {
		p = append(p, "no PrometheusRule")
	}
	p = append(p, checkPolicies(kind, podLabels, ports, o)...)
	return podLabels, p
}

// checkPolicies: a NetworkPolicy must select the workload's pods and admit traffic to ports
// they have; one that names no such port would shut out Prometheus along with everyone else.
func checkPolicies(kind string, podLabels labels.Set, ports map[string]int32, o *objects) []string {
	var p []string
	for _, n := range o.policies {
		selector, err := metav1.LabelSelectorAsSelector(&n.Spec.PodSelector)
		if err != nil || !selector.Matches(podLabels) {
			p = append(p, "NetworkPolicy "+n.Name+" does not select the "+kind+"'s pods")
		}
		for _, rule := range n.Spec.Ingress {
			for _, port := range rule.Ports {
				if port.Port == nil {
					continue
				}
				if _, ok := ports[port.Port.StrVal]; port.Port.StrVal != "" && !ok {
					p = append(p, "NetworkPolicy "+n.Name+" admits unknown container port "+port.Port.StrVal)
				}
			}
		}
	}
	return p
}

// checkContainer records the container's ports in `ports` and checks its mounts, ConfigMap
// references, probes and memory request.
func checkContainer(c corev1.Container, volumes map[string]bool, ports map[string]int32, o *objects) []string {
	var p []string
	for _, port := range c.Ports {
		ports[port.Name] = port.ContainerPort
	}
	for _, m := range c.VolumeMounts {
		if !volumes[m.Name] {
			p = append(p, "container "+c.Name+" mounts unknown volume "+m.Name)
		}
	}
	for _, e := range c.Env {
		if e.ValueFrom != nil && e.ValueFrom.ConfigMapKeyRef != nil {
			ref := e.ValueFrom.ConfigMapKeyRef
			if cm := o.configMaps[ref.Name]; cm == nil {
				p = append(p, "env "+e.Name+" references missing ConfigMap "+ref.Name)
			} else if _, ok := cm.Data[ref.Key]; !ok {
				p = append(p, "env "+e.Name+" references missing key "+ref.Key+" of "+ref.Name)
			}
		}
	}
	for _, e := range c.EnvFrom {
		if e.ConfigMapRef != nil && o.configMaps[e.ConfigMapRef.Name] == nil {
			p = append(p, "envFrom references missing ConfigMap "+e.ConfigMapRef.Name)
		}
	}
	probes := map[string]*corev1.Probe{
		"startup": c.StartupProbe, "liveness": c.LivenessProbe, "readiness": c.ReadinessProbe,
	}
	names := []string{"startup", "liveness", "readiness"}
	for _, name := range names {
		probe := probes[name]
		if probe == nil || probe.HTTPGet == nil {
			p = append(p, "container "+c.Name+" has no HTTP "+name+" probe")
			continue
		}
		if _, ok := ports[probe.HTTPGet.Port.StrVal]; !ok {
			p = append(p, name+" probe port "+probe.HTTPGet.Port.String()+" is not a container port")
		}
	}
	if c.ReadinessProbe != nil && c.ReadinessProbe.HTTPGet != nil && c.ReadinessProbe.HTTPGet.Path != "/readyz" {
		p = append(p, "readiness probe must call /readyz")
	}
	if c.LivenessProbe != nil && c.LivenessProbe.HTTPGet != nil && c.LivenessProbe.HTTPGet.Path != "/healthz" {
		p = append(p, "liveness probe must call /healthz")
	}
	if c.Resources.Requests.Memory().IsZero() {
		p = append(p, "container "+c.Name+" has no memory request")
	}
	return p
}

func printRules(dir string) error {
	docs, err := build(dir, nil)
	if err != nil {
		return err
	}
	var groups []monitoringv1.RuleGroup
	for _, doc := range docs {
		var tm typeMeta
		if err := yaml.Unmarshal(doc, &tm); err != nil {
			return err
		}
		if tm.Kind != "PrometheusRule" {
			continue
		}
		var r monitoringv1.PrometheusRule
		if err := decodeStrict(doc, &r); err != nil {
			return err
		}
		groups = append(groups, r.Spec.Groups...)
	}
	out, err := yaml.Marshal(map[string]interface{}{"groups": groups})
	if err != nil {
		return err
	}
	_, err = os.Stdout.Write(out)
	return err
}

// Grafana dashboard: only the fields this check reads; the rest is Grafana's.
type dashboard struct {
	Title         string  `json:"title"`
	UID           string  `json:"uid"`
	SchemaVersion int     `json:"schemaVersion"`
	Panels        []panel `json:"panels"`
}

type panel struct {
	ID      int      `json:"id"`
	Title   string   `json:"title"`
	Type    string   `json:"type"`
	Targets []target `json:"targets"`
	Panels  []panel  `json:"panels"`
}

type target struct {
	Expr  string `json:"expr"`
	RefID string `json:"refId"`
}

func validateDashboard(path string) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var d dashboard
	if err := json.NewDecoder(bytes.NewReader(raw)).Decode(&d); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	var problems []string
	if d.Title == "" || d.UID == "" || d.SchemaVersion == 0 {
		problems = append(problems, "title, uid and schemaVersion are required")
	}
	ids := map[int]bool{}
	exprs := 0
	var visit func(ps []panel)
	visit = func(ps []panel) {
		for _, pn := range ps {
			if ids[pn.ID] {
				problems = append(problems, fmt.Sprintf("panel id %d is used twice", pn.ID))
			}
			ids[pn.ID] = true
			if pn.Type != "row" && len(pn.Targets) == 0 {
				problems = append(problems, "panel "+pn.Title+" has no query")
			}
			for _, t := range pn.Targets {
				if strings.TrimSpace(t.Expr) == "" {
					problems = append(problems, "panel "+pn.Title+" has an empty query")
				}
				exprs++
			}
			visit(pn.Panels)
		}
	}
	visit(d.Panels)
	if len(problems) > 0 {
		sort.Strings(problems)
		return fmt.Errorf("%s: %s", path, strings.Join(problems, "; "))
	}
	fmt.Printf("validate: dashboard %q: %d panels, %d queries\n", d.Title, len(ids), exprs)
	return nil
}
