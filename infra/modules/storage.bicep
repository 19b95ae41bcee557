// The function app's storage: host state (AzureWebJobsStorage, identity-based), the deployment
// package container, the sweep queue and its poison queue, and the Event Grid dead-letter container.
// Shared keys are disabled: every client must authenticate with Entra ID.
param location string
param tags object
param storageAccountName string
param deploymentContainerName string
param deadLetterContainerName string
@description('The cleaner\'s cache: raw manifests by digest and repository snapshots.')
param cacheContainerName string
param sweepQueueName string

@description('Principal of the function app\'s user-assigned identity.')
param appPrincipalId string

// Built-in role ids (docs/functions-facts.md 3.2).
// Storage Blob Data Owner: the host's blob leases and keys, and reading the deployment package.
var storageBlobDataOwner = 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
// Storage Queue Data Contributor: the sweep queue's trigger and output binding, and the host
// moving a failing message to `<queue>-poison`.
var storageQueueDataContributor = '974c5e8b-45b9-4653-ba55-5f855dd0fb88'

resource account 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  // checkov:skip=CKV_AZURE_35:Flex Consumption without a virtual network reaches storage over its public endpoint; shared keys are off, so every request needs an Entra token and a data role.
  // checkov:skip=CKV_AZURE_59:Same reason as CKV_AZURE_35; anonymous blob access is off (allowBlobPublicAccess false).
  // checkov:skip=CKV_AZURE_206:Host leases, queue messages and dead letters are short-lived; locally redundant storage is enough.
  // checkov:skip=CKV_AZURE_43:The name is computed ('stacrclean' + uniqueString, 23 lowercase characters), which checkov cannot evaluate.
  name: storageAccountName
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: 'Standard_LRS'
  }
  properties: {
    accessTier: 'Hot'
    allowSharedKeyAccess: false
    allowBlobPublicAccess: false
    allowCrossTenantReplication: false
    defaultToOAuthAuthentication: true
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    dnsEndpointType: 'Standard'
    // Flex Consumption without a virtual network reaches its storage over public endpoints;
    // access still requires an Entra token and a data role.
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: 'Allow'
    }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: account
  name: 'default'
  properties: {
    deleteRetentionPolicy: {
      enabled: true
      days: 7
    }
    containerDeleteRetentionPolicy: {
      enabled: true
      days: 7
    }
  }
}

resource deploymentContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: deploymentContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource deadLetterContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: deadLetterContainerName
  properties: {
    publicAccess: 'None'
  }
}

// The cleaner's cache. The app's identity already holds Storage Blob Data Owner on the account
// (below, for the host), which covers reading and writing it: no narrower role would add anything.
resource cacheContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: cacheContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2023-05-01' = {
  parent: account
  name: 'default'
}

resource sweepQueue 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = {
  parent: queueService
  name: sweepQueueName
}

resource sweepPoisonQueue 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = {
  parent: queueService
  name: '${sweepQueueName}-poison'
}

// Blob access on the whole account: the Functions host creates and uses containers of its own
// (azure-webjobs-hosts for timer schedule status and singleton leases, azure-webjobs-secrets
// for its keys) when it first starts, and creating a container is an account-level operation,
// so no narrower scope lets the host start. The account holds nothing but this app's state.
resource hostBlobOwner 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(account.id, appPrincipalId, storageBlobDataOwner)
  scope: account
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageBlobDataOwner)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// Queue access only on the two queues the app uses, both created above so the host never needs
// to create one: the sweep queue (trigger and output binding) and its poison queue (the queue
// extension moves a message there after maxDequeueCount failures). The host itself keeps its
// state in blobs, and no blob trigger (which would use queues of its own) is bound.
resource sweepQueueContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(sweepQueue.id, appPrincipalId, storageQueueDataContributor)
  scope: sweepQueue
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageQueueDataContributor)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource sweepPoisonQueueContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(sweepPoisonQueue.id, appPrincipalId, storageQueueDataContributor)
  scope: sweepPoisonQueue
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageQueueDataContributor)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

output storageAccountName string = account.name
output storageAccountId string = account.id
output blobEndpoint string = account.properties.primaryEndpoints.blob
output queueEndpoint string = account.properties.primaryEndpoints.queue
output deploymentContainerName string = deploymentContainer.name
output cacheContainerName string = cacheContainer.name
output deadLetterContainerName string = deadLetterContainer.name
output sweepQueueName string = sweepQueue.name
output sweepPoisonQueueName string = sweepPoisonQueue.name
