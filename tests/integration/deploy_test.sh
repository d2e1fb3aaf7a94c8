#!/usr/bin/env bash
# The deployment files: the kustomize base (with and without the KEDA component) decodes
# strictly into the Kubernetes, Prometheus Operator and KEDA API types; typos fail; the alert
# rules pass promtool's check and their unit tests; the Grafana dashboard is well formed.
# Usage: deploy_test.sh SOURCE_DIR WORK_DIR
set -euo pipefail
src=$1
work=$2
rm -rf "$work" && mkdir -p "$work"
validate=$work/validate
(cd "$src/deploy/validate" && go build -o "$validate" .)

"$validate" manifests "$src/deploy/k8s/base"
"$validate" manifests "$src/deploy/k8s/base" "$src/deploy/k8s/components/keda"
"$validate" manifests "$src/deploy/k8s/base" "$src/deploy/k8s/components/network-policy"
"$validate" manifests "$src/deploy/k8s/relay"
"$validate" dashboard "$src/deploy/grafana/pqa-scorer.json"

# Alert rules: syntax, then behaviour (deploy/k8s/tests/alerts_test.yaml).
mkdir -p "$work/rules"
"$validate" rules "$src/deploy/k8s/base" >"$work/rules/rules.yaml"
promtool check rules "$work/rules/rules.yaml"
cp "$src/deploy/k8s/tests/alerts_test.yaml" "$work/rules/"
promtool test rules "$work/rules/alerts_test.yaml"
"$validate" rules "$src/deploy/k8s/relay" >"$work/rules/relay_rules.yaml"
promtool check rules "$work/rules/relay_rules.yaml"
cp "$src/deploy/k8s/tests/relay_alerts_test.yaml" "$work/rules/"
promtool test rules "$work/rules/relay_alerts_test.yaml"

# Each mutation is a typo or a broken reference; the validator must refuse it, naming it.
expect_refused() {  # FILE SED-EXPRESSION WHAT-THE-ERROR-NAMES [COMPONENT | relay]
  local tree=$work/mutated
  rm -rf "$tree" && mkdir -p "$tree/deploy"
  cp -r "$src/deploy/k8s" "$tree/deploy/" && cp -r "$src/config" "$tree/"
  sed -i "$2" "$tree/deploy/k8s/$1"
  cmp -s "$src/deploy/k8s/$1" "$tree/deploy/k8s/$1" && { echo "mutation $2 changed nothing"; exit 1; }
  local components=() dir=$tree/deploy/k8s/base
  if [ "${4:-}" = relay ]; then
    dir=$tree/deploy/k8s/relay
  elif [ -n "${4:-}" ]; then
    components=("$tree/deploy/k8s/$4")
  fi
  if "$validate" manifests "$dir" "${components[@]}" >"$work/out" 2>&1; then
    echo "FAIL: accepted $1 after '$2'"; exit 1
  fi
  grep -q -- "$3" "$work/out" || { echo "FAIL: error does not name '$3':"; cat "$work/out"; exit 1; }
  echo "refused as expected: $1 '$2' ($3)"
}
expect_refused base/statefulset.yaml 's/terminationGracePeriodSeconds/terminationGracePeriodSecond/' 'terminationGracePeriodSecond'
expect_refused base/statefulset.yaml 's/readinessProbe:/readinessprobe:/' 'readinessprobe'
expect_refused base/statefulset.yaml 's/containerPort: 8080/containerPort: "8080x"/' 'containerPort'
expect_refused base/statefulset.yaml 's/path: \/readyz/path: \/ready/' 'readiness probe must call /readyz'
expect_refused base/statefulset.yaml '0,/port: http/s//port: admin/' 'probe port admin'
expect_refused base/service.yaml 's/targetPort: http/targetPort: metrics/' 'unknown container port metrics'
expect_refused base/poddisruptionbudget.yaml 's/maxUnavailable/maxUnavailabe/' 'maxUnavailabe'
expect_refused base/servicemonitor.yaml 's/scrapeTimeout/scrapeTimout/' 'scrapeTimout'
expect_refused base/servicemonitor.yaml 's/- port: http/- port: web/' 'unknown Service port web'
expect_refused base/prometheusrule.yaml '0,/expr:/s//expression:/' 'expression'
expect_refused components/keda/scaledobject.yaml 's/minReplicaCount/minReplicas/' 'minReplicas' components/keda
expect_refused components/keda/scaledobject.yaml 's/name: pqa-scorer$/name: other/' 'does not target the StatefulSet' components/keda
expect_refused components/keda/kustomization.yaml '/^patches:/,$d' 'sets spec.replicas' components/keda
expect_refused components/keda/scaledobject.yaml 's/bootstrapServersFromEnv: KAFKA_BOOTSTRAP_SERVERS/bootstrapServers: kafka:9092/' 'bootstrapServersFromEnv' components/keda
expect_refused components/network-policy/networkpolicy.yaml 's/policyTypes/policyType/' 'policyType' components/network-policy
expect_refused components/network-policy/networkpolicy.yaml 's/- port: http/- port: admin/' 'admits unknown container port admin' components/network-policy
expect_refused components/network-policy/networkpolicy.yaml 's/name: pqa-scorer$/name: other/' 'does not select the StatefulSet' components/network-policy
expect_refused relay/deployment.yaml 's/livenessProbe:/livenesProbe:/' 'livenesProbe' relay
expect_refused relay/deployment.yaml 's/terminationGracePeriodSeconds: 80/terminationGracePeriodSeconds: 60/' 'must cover the graceful shutdown' relay
expect_refused relay/deployment.yaml 's/name: pqa-relay-env/name: pqa-relay-environment/' 'envFrom references missing ConfigMap pqa-relay-environment' relay
expect_refused relay/servicemonitor.yaml 's/- port: http/- port: metrics/' 'unknown Service port metrics' relay
echo "deploy files: ok"
