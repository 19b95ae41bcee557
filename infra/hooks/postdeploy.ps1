# azd postdeploy hook (Windows): the second deployment pass. See postdeploy.sh for why.
$ErrorActionPreference = 'Stop'

if ($env:DEPLOY_EVENT_SUBSCRIPTION -eq 'true') {
    Write-Host 'postdeploy: the Event Grid subscription is already part of the deployment.'
    exit 0
}

$retrySeconds = if ($env:POSTDEPLOY_RETRY_SECONDS) { [int]$env:POSTDEPLOY_RETRY_SECONDS } else { 60 }
azd env set DEPLOY_EVENT_SUBSCRIPTION true
# The nested provision must not inherit the old value azd handed this hook.
$env:DEPLOY_EVENT_SUBSCRIPTION = 'true'
for ($attempt = 1; $attempt -le 3; $attempt++) {
    azd provision --no-prompt
    if ($LASTEXITCODE -eq 0) {
        Write-Host 'postdeploy: Event Grid subscription created; pushes now trigger on_image_pushed.'
        exit 0
    }
    if ($attempt -lt 3) {
        Write-Warning "postdeploy: Event Grid cannot reach the function yet; retrying in $retrySeconds s."
        Start-Sleep -Seconds $retrySeconds
    }
}
azd env set DEPLOY_EVENT_SUBSCRIPTION false
Write-Error 'postdeploy: the Event Grid subscription could not be created. Check that on_image_pushed is listed in the portal, then run: azd hooks run postdeploy'
exit 1
