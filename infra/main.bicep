// acr-cleanup: the Azure Functions app that cleans an EXISTING container registry.
//
// Deployed at resource-group scope (`azd up`, or `az deployment group create`). The registry may
// live in another resource group of the same subscription: everything that touches it (role
// assignments, the Event Grid system topic and its subscription) is a module scoped there.
//
// Two passes (docs/deploy.md): Event Grid validates an AzureFunction endpoint when the
// subscription is created, so it can only exist after the code is published (Azure/bicep#11656).
// Pass 1 runs with deployEventSubscription=false; the azd postdeploy hook (infra/hooks/) runs
// pass 2 with true.
//
// The scanned Bicep stays inside pycep-parser 0.5.1's grammar (checkov's parser): no typed arrays,
// no literal-union types, no decorators inside `type`, no func/import (docs/functions-facts.md 4.2).
targetScope = 'resourceGroup'

@minLength(1)
@maxLength(40)
@description('Name of the environment (azd sets it); seeds the generated resource names.')
param environmentName string

@description('Region for the function app, storage and monitoring. Empty: the resource group\'s region.')
param location string = ''

@minLength(5)
@maxLength(50)
@description('Name of the existing container registry to clean.')
param registryName string

@description('Resource group of the registry (same subscription). Empty: this deployment\'s resource group.')
param registryResourceGroup string = ''

@description('The cleanup policy as JSON text (docs/policy.md). Leave empty to use cleanupPolicyFile.')
param cleanupPolicy string = ''

@description('Path of a policy JSON file inside the deployed package, relative to the app root. Used when cleanupPolicy is empty.')
param cleanupPolicyFile string = ''

@description('NCRONTAB (six fields, UTC) of the backstop sweep. Flex Consumption has no time zones.')
param cleanupSchedule string = '0 0 3 * * *'

@description('Plan and log only, delete nothing. Keep true for the first deployment; see docs/deploy.md.')
param cleanupDryRun bool = true

@description('The registry uses ABAC repository permissions (roleAssignmentMode AbacRepositoryPermissions).')
param registryAbacMode bool = false

@description('The policy locks tags (RBAC mode then needs a custom role with repository metadata read/write).')
param tagLocksEnabled bool = false

@description('Comma-separated repository prefixes whose pushes trigger a run (no spaces). Empty: every repository.')
param repositoryPrefixes string = ''

@description('Name of an Event Grid system topic that already exists on the registry (a registry can have only one). Empty: create one.')
param existingSystemTopicName string = ''

@description('Create the Event Grid subscription. false on the first pass: the function must be published first.')
param deployEventSubscription bool = false

// The bounds below are the ones acr_core/app/settings.py accepts; outside them the app refuses to run.
@description('Upper bound on concurrent registry writes per cleanup run.')
@minValue(1)
@maxValue(128)
param maxConcurrency int = 32

// Pace (docs/operations.md, "A fleet within one identity's budget"): 0 means "each run's share of
// the registry SKU's per-identity limit", computed in modules/function-app.bicep.
@description('DataplaneWrite (tag locks) each run may send a minute. 0: its share of the SKU\'s per-identity limit.')
@minValue(0)
@maxValue(1000000)
param maxWritesPerMinute int = 0

@description('DataplaneDelete (manifest deletes) each run may send a minute. 0: its share of the SKU\'s per-identity limit.')
@minValue(0)
@maxValue(1000000)
param maxDeletesPerMinute int = 0

@description('DataplaneRead (listings, reads) each run may send a minute. 0: its share of the SKU\'s per-identity limit.')
@minValue(0)
@maxValue(1000000)
param maxReadsPerMinute int = 0

@description('Sweep queue messages one instance cleans at once (the queue trigger\'s batchSize). Every run shares the one identity\'s budget.')
@minValue(1)
@maxValue(32)
param sweepBatchSize int = 1

@description('Seconds the timer may spend before handing the remaining repositories to the queue.')
@minValue(30)
@maxValue(1500)
param sweepBudgetSeconds int = 600

@description('AAD audience for the registry token exchange (sovereign clouds differ).')
param acrTokenAudience string = 'https://containerregistry.azure.net'

@description('Flex Consumption instance cap (40 is the lowest allowed maximum). Bounds registry load too.')
@minValue(40)
@maxValue(1000)
param maximumInstanceCount int = 40

@description('Event Grid delivery attempts before an event is dead-lettered.')
@minValue(1)
@maxValue(30)
param eventMaxDeliveryAttempts int = 10

@description('Minutes Event Grid keeps retrying an event before it is dead-lettered.')
@minValue(1)
@maxValue(1440)
param eventTimeToLiveInMinutes int = 1440

@description('Days each deletion-ledger record stays immutable (cannot be changed or removed).')
@minValue(1)
@maxValue(146000)
param ledgerRetentionDays int = 365

@description('Tags added to every resource this template creates.')
param tags object = {}

// The Event Grid subscription's destination. Must be a function that function_app.py registers
// with an Event Grid trigger (docs/architecture.md, "Function names").
var eventFunctionName = 'on_image_pushed'
// The queue the timer fans out to (docs/architecture.md). `<queue>-poison` receives messages that
// failed maxDequeueCount times (docs/functions-facts.md 1.4).
var sweepQueueName = 'acr-cleanup-sweep'
var deploymentContainerName = 'app-package'
var deadLetterContainerName = 'eventgrid-deadletter'
var ledgerContainerName = 'acr-cleanup-ledger'
// Raw manifests by digest and repository snapshots (CLEANUP_CACHE_URL, docs/architecture.md).
var cacheContainerName = 'acr-cleanup-cache'

// azd passes unset environment values as empty strings.
var appLocation = empty(location) ? resourceGroup().location : location
var registryGroup = empty(registryResourceGroup) ? resourceGroup().name : registryResourceGroup

var resourceToken = toLower(uniqueString(subscription().id, resourceGroup().id, environmentName))
var allTags = union(tags, { 'azd-env-name': environmentName })

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: 'id-acrclean-${resourceToken}'
  location: appLocation
  tags: allTags
}

// Module deployment names carry the token: several environments may deploy into the registry's
// resource group, and a deployment with the same name would replace another's record.
module monitoring 'modules/monitoring.bicep' = {
  name: 'acrclean-monitoring-${resourceToken}'
  params: {
    location: appLocation
    tags: allTags
    workspaceName: 'log-acrclean-${resourceToken}'
    appInsightsName: 'appi-acrclean-${resourceToken}'
    publisherPrincipalId: identity.properties.principalId
  }
}

module storage 'modules/storage.bicep' = {
  name: 'acrclean-storage-${resourceToken}'
  params: {
    location: appLocation
    tags: allTags
    storageAccountName: 'stacrclean${resourceToken}'
    deploymentContainerName: deploymentContainerName
    deadLetterContainerName: deadLetterContainerName
    cacheContainerName: cacheContainerName
    sweepQueueName: sweepQueueName
    appPrincipalId: identity.properties.principalId
  }
}

module ledger 'modules/ledger.bicep' = {
  name: 'acrclean-ledger-${resourceToken}'
  params: {
    storageAccountName: storage.outputs.storageAccountName
    containerName: ledgerContainerName
    retentionDays: ledgerRetentionDays
    appPrincipalId: identity.properties.principalId
  }
}

// The moving-tag history's table and the app's role on it (issue 14).
module tagHistory 'modules/tag-history.bicep' = {
  name: 'acrclean-tag-history-${resourceToken}'
  params: {
    storageAccountName: storage.outputs.storageAccountName
    tableName: 'taghistory'
    appPrincipalId: identity.properties.principalId
  }
}

module registryAccess 'modules/registry-access.bicep' = {
  name: 'acrclean-registry-access-${resourceToken}'
  scope: resourceGroup(registryGroup)
  params: {
    registryName: registryName
    principalId: identity.properties.principalId
    abacMode: registryAbacMode
    tagLocksEnabled: tagLocksEnabled
  }
}

// The outputs used below make this module wait for the storage, monitoring and registry modules,
// role assignments included: the app never starts without the access it needs.
module functionApp 'modules/function-app.bicep' = {
  name: 'acrclean-function-app-${resourceToken}'
  params: {
    location: appLocation
    tags: allTags
    planName: 'plan-acrclean-${resourceToken}'
    appName: 'func-acrclean-${resourceToken}'
    identityId: identity.id
    identityClientId: identity.properties.clientId
    storageBlobEndpoint: storage.outputs.blobEndpoint
    storageQueueEndpoint: storage.outputs.queueEndpoint
    deploymentContainerName: deploymentContainerName
    cacheContainerName: storage.outputs.cacheContainerName
    appInsightsConnectionString: monitoring.outputs.connectionString
    maximumInstanceCount: maximumInstanceCount
    registryLoginServer: registryAccess.outputs.loginServer
    registryId: registryAccess.outputs.registryId
    cleanupPolicy: cleanupPolicy
    cleanupPolicyFile: cleanupPolicyFile
    cleanupSchedule: cleanupSchedule
    cleanupDryRun: cleanupDryRun
    maxConcurrency: maxConcurrency
    maxWritesPerMinute: maxWritesPerMinute
    maxDeletesPerMinute: maxDeletesPerMinute
    maxReadsPerMinute: maxReadsPerMinute
    registrySku: registryAccess.outputs.sku
    sweepBatchSize: sweepBatchSize
    sweepBudgetSeconds: sweepBudgetSeconds
    acrTokenAudience: acrTokenAudience
    ledgerUrl: ledger.outputs.containerUrl
    historyTableUrl: tagHistory.outputs.tableUrl
  }
}

module eventTopic 'modules/event-topic.bicep' = {
  name: 'acrclean-event-topic-${resourceToken}'
  scope: resourceGroup(registryGroup)
  params: {
    registryName: registryName
    topicName: empty(existingSystemTopicName) ? 'egst-acrclean-${resourceToken}' : existingSystemTopicName
    useExisting: !empty(existingSystemTopicName)
    tags: allTags
  }
}

module deadLetterAccess 'modules/dead-letter-access.bicep' = {
  name: 'acrclean-dead-letter-access-${resourceToken}'
  params: {
    storageAccountName: storage.outputs.storageAccountName
    containerName: deadLetterContainerName
    principalId: eventTopic.outputs.principalId
  }
}

module eventSubscription 'modules/event-subscription.bicep' = if (deployEventSubscription) {
  name: 'acrclean-event-subscription-${resourceToken}'
  scope: resourceGroup(registryGroup)
  params: {
    topicName: eventTopic.outputs.topicName
    functionAppId: functionApp.outputs.appId
    functionName: eventFunctionName
    repositoryPrefixes: repositoryPrefixes
    maxDeliveryAttempts: eventMaxDeliveryAttempts
    eventTimeToLiveInMinutes: eventTimeToLiveInMinutes
    deadLetterStorageAccountId: storage.outputs.storageAccountId
    deadLetterContainerName: deadLetterContainerName
  }
  // Event Grid checks its write access to the dead-letter container when it first needs it; the
  // assignment must exist before events can be dead-lettered.
  dependsOn: [
    deadLetterAccess
  ]
}

output AZURE_LOCATION string = appLocation
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_FUNCTION_APP_NAME string = functionApp.outputs.appName
output AZURE_FUNCTION_APP_ID string = functionApp.outputs.appId
output AZURE_MANAGED_IDENTITY_CLIENT_ID string = identity.properties.clientId
output AZURE_MANAGED_IDENTITY_PRINCIPAL_ID string = identity.properties.principalId
output ACR_LOGIN_SERVER string = registryAccess.outputs.loginServer
output EVENTGRID_SYSTEM_TOPIC_NAME string = eventTopic.outputs.topicName
output EVENT_SUBSCRIPTION_DEPLOYED bool = deployEventSubscription
output APPLICATIONINSIGHTS_NAME string = monitoring.outputs.appInsightsName
output LOG_ANALYTICS_WORKSPACE_NAME string = monitoring.outputs.workspaceName
output STORAGE_ACCOUNT_NAME string = storage.outputs.storageAccountName
