// The deletion ledger: one blob container of the function's storage account, under a time-based
// immutability policy, so a record cannot be changed or removed until it is `retentionDays` old
// (not by the app, not by an account owner). The app's identity gets Storage Blob Data
// Contributor on this container only: it writes records (never overwriting: the app sends
// If-None-Match: *), reads and lists them (restore's protections), and nothing else here.
targetScope = 'resourceGroup'

param storageAccountName string
param containerName string

@description('Days each ledger record is immutable after it is written.')
param retentionDays int

@description('Principal of the function app\'s user-assigned identity.')
param appPrincipalId string

// Built-in role "Storage Blob Data Contributor" (docs/functions-facts.md 3.2): read, write and
// list blobs. No narrower built-in role can write; the immutability policy refuses deletes and
// overwrites whatever the role allows.
var storageBlobDataContributor = 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'

resource account 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' existing = {
  parent: account
  name: 'default'
}

resource container 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: containerName
  properties: {
    publicAccess: 'None'
  }
}

// Unlocked as deployed, so a mistaken retention can still be shortened; lock it once the
// retention is right (docs/operations.md, "The deletion ledger"): a locked policy can only grow.
resource immutability 'Microsoft.Storage/storageAccounts/blobServices/containers/immutabilityPolicies@2023-05-01' = {
  parent: container
  name: 'default'
  properties: {
    immutabilityPeriodSinceCreationInDays: retentionDays
    allowProtectedAppendWrites: false
  }
}

resource ledgerWriter 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(container.id, appPrincipalId, storageBlobDataContributor)
  scope: container
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageBlobDataContributor)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

output containerUrl string = '${account.properties.primaryEndpoints.blob}${container.name}'
