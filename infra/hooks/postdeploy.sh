#!/bin/sh
# azd postdeploy hook: the second deployment pass.
#
# Event Grid validates an AzureFunction destination when the subscription is created, which fails
# until the published code's Event Grid trigger is indexed (Azure/bicep#11656). So the first
# `azd provision` runs with DEPLOY_EVENT_SUBSCRIPTION=false; once `azd deploy` has published the
# code, this hook switches the flag on for good and provisions again. Later `azd up` runs find the
# flag on and keep the subscription in the first pass.
set -eu

if [ "${DEPLOY_EVENT_SUBSCRIPTION:-false}" = "true" ]; then
  echo "postdeploy: the Event Grid subscription is already part of the deployment."
  exit 0
fi

# The host indexes the functions shortly after publishing, so the first try can come too early.
retry_seconds="${POSTDEPLOY_RETRY_SECONDS:-60}"
azd env set DEPLOY_EVENT_SUBSCRIPTION true
# azd handed this hook its environment values as process variables; the nested provision must
# not inherit the old value.
export DEPLOY_EVENT_SUBSCRIPTION=true
attempt=1
until azd provision --no-prompt; do
  if [ "$attempt" -ge 3 ]; then
    azd env set DEPLOY_EVENT_SUBSCRIPTION false
    echo "postdeploy: the Event Grid subscription could not be created. Check that the function" >&2
    echo "postdeploy: on_image_pushed is listed in the portal, then run: azd hooks run postdeploy" >&2
    exit 1
  fi
  echo "postdeploy: Event Grid cannot reach the function yet; retrying in ${retry_seconds} s." >&2
  sleep "$retry_seconds"
  attempt=$((attempt + 1))
done
echo "postdeploy: Event Grid subscription created; pushes now trigger on_image_pushed."
