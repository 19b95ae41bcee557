// Flex Consumption plan (FC1) and the Python 3.11 function app. The app runs as ONE user-assigned
// identity for everything: deployment package, host storage, telemetry and the registry.
//
// Flex rejects the classic settings (FUNCTIONS_WORKER_RUNTIME, FUNCTIONS_EXTENSION_VERSION,
// WEBSITE_RUN_FROM_PACKAGE, WEBSITE_CONTENT*, SCM_DO_BUILD_DURING_DEPLOYMENT, ENABLE_ORYX_BUILD,
// WEBSITE_TIME_ZONE, TZ) and linuxFxVersion: the runtime is functionAppConfig.runtime
// (docs/functions-facts.md 3.1). None of them is set here.
param location string
param tags object
param planName string
param appName string

@description('Resource id of the user-assigned identity the app runs as.')
param identityId string

@description('Client id of that identity: picks it for storage, telemetry and azure-identity.')
param identityClientId string

param storageBlobEndpoint string
param storageQueueEndpoint string
param deploymentContainerName string
@description('Blob container of the cleaner\'s cache (manifests by digest, repository snapshots).')
param cacheContainerName string
param appInsightsConnectionString string

@minValue(40)
@maxValue(1000)
param maximumInstanceCount int

param registryLoginServer string
param registryId string
param cleanupPolicy string
param cleanupPolicyFile string
param cleanupSchedule string
param cleanupDryRun bool
param maxConcurrency int
param maxWritesPerMinute int
param maxDeletesPerMinute int
param maxReadsPerMinute int

@description('The EXISTING registry\'s sku.name: Basic, Standard or Premium.')
param registrySku string

@minValue(1)
@maxValue(32)
param sweepBatchSize int
param sweepBudgetSeconds int
param acrTokenAudience string
@description('The deletion ledger\'s blob container URL (CLEANUP_LEDGER_URL).')
param ledgerUrl string
@description('The moving-tag history\'s table URL (CLEANUP_HISTORY_TABLE_URL).')
param historyTableUrl string

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  // checkov:skip=CKV_AZURE_225:Zone redundancy is an availability choice with a cost; a missed sweep is caught by the next one.
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    tier: 'FlexConsumption'
    name: 'FC1'
  }
  properties: {
    reserved: true
  }
}

resource app 'Microsoft.Web/sites@2024-04-01' = {
  // checkov:skip=CKV_AZURE_222:Event Grid pushes events to the function over its public HTTPS endpoint; the endpoint needs the Event Grid extension's system key.
  // checkov:skip=CKV_AZURE_17:Event Grid delivery presents no client certificate; requiring one would reject every event.
  // checkov:skip=CKV_AZURE_212:Flex Consumption scales from zero per function; there is no instance to fail over from.
  // checkov:skip=CKV_AZURE_213:The app serves no HTTP traffic of its own, so there is no health endpoint to probe.
  name: appName
  location: location
  // azd finds the app to publish to by this tag (azure.yaml, service "cleanup").
  tags: union(tags, { 'azd-service-name': 'cleanup' })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    clientCertEnabled: false
    publicNetworkAccess: 'Enabled'
    siteConfig: {
      minTlsVersion: '1.2'
      scmMinTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: true
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storageBlobEndpoint}${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: 2048
      }
      runtime: {
        name: 'python'
        version: '3.11'
      }
    }
  }
}

// Publishing with a user name and password stays off: azd and the CLI publish with Entra tokens.
resource ftpPublishing 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: app
  name: 'ftp'
  properties: {
    allow: false
  }
}

resource scmPublishing 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: app
  name: 'scm'
  properties: {
    allow: false
  }
}

// Host storage and telemetry, identity-based (docs/functions-facts.md 3.2). Blob and queue are all the
// host and the sweep queue use; no table service.
var platformSettings = {
  AzureWebJobsStorage__blobServiceUri: storageBlobEndpoint
  AzureWebJobsStorage__queueServiceUri: storageQueueEndpoint
  AzureWebJobsStorage__credential: 'managedidentity'
  AzureWebJobsStorage__clientId: identityClientId
  APPLICATIONINSIGHTS_CONNECTION_STRING: appInsightsConnectionString
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identityClientId};Authorization=AAD'
  // On Python <= 3.12 the worker's bundled azure-functions wins over requirements.txt unless
  // dependencies are isolated (Azure/azure-functions-python-worker#1642); function_app.py needs
  // func.CloudEvent, which first shipped in azure-functions 1.25.0.
  PYTHON_ISOLATE_WORKER_DEPENDENCIES: '1'
}

// The settings function_app.py reads (docs/architecture.md, "Function app settings").
var cleanupSettings = {
  ACR_LOGIN_SERVER: registryLoginServer
  ACR_RESOURCE_ID: registryId
  ACR_TOKEN_AUDIENCE: acrTokenAudience
  AZURE_CLIENT_ID: identityClientId
  CLEANUP_SCHEDULE: cleanupSchedule
  CLEANUP_DRY_RUN: cleanupDryRun ? 'true' : 'false'
  CLEANUP_MAX_CONCURRENCY: string(maxConcurrency)
  CLEANUP_SWEEP_BUDGET_SECONDS: string(sweepBudgetSeconds)
  CLEANUP_LEDGER_URL: ledgerUrl
  CLEANUP_HISTORY_TABLE_URL: historyTableUrl
  CLEANUP_CACHE_URL: '${storageBlobEndpoint}${cacheContainerName}'
  // Push runs list a repository in full again at least hourly (docs/reliability.md).
  CLEANUP_SNAPSHOT_MAX_AGE_SECONDS: '3600'
}

// Exactly one policy source reaches the app: inline JSON wins over a file path.
var policySettings = empty(cleanupPolicy) ? { CLEANUP_POLICY_FILE: cleanupPolicyFile } : { CLEANUP_POLICY: cleanupPolicy }

// A fleet within one identity's budget (docs/operations.md). Every instance runs as the one
// identity, and ACR's 2026 limits are per identity per registry, a minute (docs/acr-facts.md
// section 4.1). At most maximumInstanceCount instances each clean sweepBatchSize queue messages
// at once (host.json's newBatchThreshold is 0), so that many runs share the budget: each gets
// an equal share, which it paces at 95 % of (acr_core/run/limiter.py). No counter is shared.
var perIdentityLimits = {
  Basic: { deletes: 500, reads: 5000, writes: 1000 }
  Standard: { deletes: 500, reads: 5000, writes: 1000 }
  Premium: { deletes: 2000, reads: 10000, writes: 2000 }
}
var identityLimits = perIdentityLimits[registrySku]
var runsAtOnce = maximumInstanceCount * sweepBatchSize
var deletesPerRun = maxDeletesPerMinute > 0 ? maxDeletesPerMinute : max(1, identityLimits.deletes / runsAtOnce)
var readsPerRun = maxReadsPerMinute > 0 ? maxReadsPerMinute : max(1, identityLimits.reads / runsAtOnce)
var writesPerRun = maxWritesPerMinute > 0 ? maxWritesPerMinute : max(1, identityLimits.writes / runsAtOnce)
var paceSettings = {
  CLEANUP_REGISTRY_SKU: registrySku
  CLEANUP_MAX_DELETES_PER_MINUTE: string(deletesPerRun)
  CLEANUP_MAX_READS_PER_MINUTE: string(readsPerRun)
  CLEANUP_MAX_WRITES_PER_MINUTE: string(writesPerRun)
  // host.json's queue batchSize, overridden per deployment (docs/functions-facts.md 1.4).
  AzureFunctionsJobHost__extensions__queues__batchSize: string(sweepBatchSize)
}

// checkov scans this child as if it were a site's web configuration; those checks concern
// properties an `appsettings` resource does not have.
resource appSettings 'Microsoft.Web/sites/config@2024-04-01' = {
  // checkov:skip=CKV_AZURE_13:App Service authentication is for HTTP front ends; this app has no HTTP function.
  // checkov:skip=CKV_AZURE_63:HTTP logging concerns web configuration, not app settings.
  // checkov:skip=CKV_AZURE_65:Detailed error pages concern web configuration, not app settings.
  // checkov:skip=CKV_AZURE_66:Failed request tracing concerns web configuration, not app settings.
  // checkov:skip=CKV_AZURE_80:No .NET Framework is used (Python).
  // checkov:skip=CKV_AZURE_88:Azure Files storage does not apply to Flex Consumption, which forbids WEBSITE_CONTENT* settings.
  // checkov:skip=CKV_AZURE_222:Public network access is a site property, set on the site.
  parent: app
  name: 'appsettings'
  properties: union(platformSettings, cleanupSettings, policySettings, paceSettings)
}

output appId string = app.id
output appName string = app.name
