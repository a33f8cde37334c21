#!/usr/bin/env bash
# `make kind-demo`: Steward on a kind cluster, for a machine with Docker: the cluster, the image
# built and loaded into it, the chart installed (with its admission webhook), the demo's PostgreSQL
# with TLS, deploy/examples applied (the PostgreSQL ones: kind has no S3), and the evidence report.
# Re-runnable. `kind delete cluster --name steward` removes it all.
set -euo pipefail
cd "$(dirname "$0")/../.."
for tool in docker kind kubectl helm openssl; do
  command -v "$tool" >/dev/null || { echo "kind-demo: $tool is needed (and Docker running)" >&2; exit 1; }
done
CLUSTER=steward
export KUBECONFIG="${KUBECONFIG:-$HOME/.kube/config}"

if ! kind get clusters | grep -qx "$CLUSTER"; then
  kind create cluster --config deploy/kind/cluster.yaml
fi
kubectl config use-context "kind-$CLUSTER" >/dev/null

echo "kind-demo: building the image and loading it into the node"
docker build -t steward:kind .
kind load docker-image steward:kind --name "$CLUSTER"

# The database's certificate, signed by a CA the Warehouse verifies (verify-full on the Service name).
tls=$(mktemp -d)
trap 'rm -rf "$tls"' EXIT
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$tls/ca.key" -out "$tls/ca.crt" -days 365 -subj /CN=steward-kind-demo-ca 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$tls/tls.key" -out "$tls/tls.csr" -subj /CN=analytics-db.data.svc 2>/dev/null
printf 'subjectAltName=DNS:analytics-db.data.svc,DNS:analytics-db.data.svc.cluster.local\n' >"$tls/ext.cnf"
openssl x509 -req -in "$tls/tls.csr" -CA "$tls/ca.crt" -CAkey "$tls/ca.key" -CAcreateserial -out "$tls/tls.crt" -days 365 -extfile "$tls/ext.cnf" 2>/dev/null
steward_password=$(openssl rand -base64 18)

for ns in data steward-system analytics data-eng governance; do kubectl create namespace "$ns" --dry-run=client -o yaml | kubectl apply -f - >/dev/null; done
kubectl label namespace analytics steward.dev/tenant=analytics --overwrite >/dev/null
secret() { kubectl create secret generic "$@" --dry-run=client -o yaml | kubectl apply -f - >/dev/null; }
# Made once: the database keeps the password it was seeded with.
if ! kubectl -n data get secret analytics-db-steward >/dev/null 2>&1; then
  secret -n data analytics-db-superuser --from-literal=password="$(openssl rand -base64 18)"
  secret -n data analytics-db-steward --from-literal=password="$steward_password"
  kubectl -n data create secret tls analytics-db-tls --cert="$tls/tls.crt" --key="$tls/tls.key"
  secret -n steward-system analytics-db-ca --from-file=ca.crt="$tls/ca.crt"
fi
steward_password=$(kubectl -n data get secret analytics-db-steward -o jsonpath='{.data.password}' | base64 -d)
secret -n steward-system analytics-db-admin --from-literal=username=steward --from-literal=password="$steward_password"
if ! kubectl -n steward-system get secret steward-report-signing-key >/dev/null 2>&1; then
  openssl genpkey -algorithm ed25519 -out "$tls/report.pem"
  secret -n steward-system steward-report-signing-key --from-file=ed25519.pem="$tls/report.pem"
fi

echo "kind-demo: PostgreSQL with TLS"
kubectl apply -f deploy/kind/postgres.yaml
kubectl -n data rollout status deploy/analytics-db --timeout=180s

echo "kind-demo: Steward, from the chart"
helm upgrade --install steward charts/steward -n steward-system -f deploy/kind/values.yaml --wait --timeout 180s

echo "kind-demo: the examples"
for f in warehouse datasetaccess maskedview accessreview; do kubectl apply -f "deploy/examples/$f.yaml"; done
kubectl wait warehouse/analytics --for=condition=Ready --timeout=120s
kubectl wait -n analytics dsa/churn-analysis --for=condition=Ready --timeout=120s || true
kubectl get steward -A
echo
echo "kind-demo: who asked (stamped by the admission webhook):"
kubectl get dsa -n analytics churn-analysis -o jsonpath='{.metadata.annotations.steward\.dev/requested-by}{"\n"}'
echo
echo "kind-demo: the evidence report (bin/steward, from this machine, through the kind cluster's API server;"
echo "the warehouse is inside the cluster, so its checks say 'not evaluated' unless you port-forward it):"
bin/steward report --warehouse analytics -o markdown --out kind-demo-report.md || true
