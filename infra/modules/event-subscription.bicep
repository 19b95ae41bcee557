// The subscription that delivers each ImagePushed event of the registry to the function.
//
// Created only once the code is published: Event Grid validates an AzureFunction destination on
// creation and fails with "Destination endpoint not found" before the host has indexed the
// Event Grid trigger (Azure/bicep#11656, Azure/Azure-Functions#1004).
targetScope = 'resourceGroup'

param topicName string
param functionAppId string

@description('A function that function_app.py registers with an Event Grid trigger.')
param functionName string

@description('Comma-separated repository prefixes (no spaces). Empty: every repository.')
param repositoryPrefixes string

param maxDeliveryAttempts int
param eventTimeToLiveInMinutes int
param deadLetterStorageAccountId string
param deadLetterContainerName string

// Only pushes: a delete never makes anything eligible for cleanup, and the function ignores
// every other type anyway (docs/acr-facts.md section 5).
var includedEventTypes = [
  'Microsoft.ContainerRegistry.ImagePushed'
]

// data.target.repository is the pushed image's repository (docs/acr-facts.md section 5).
// StringBeginsWith takes up to 25 values, OR-ed together.
var prefixFilters = empty(repositoryPrefixes) ? [] : [
  {
    operatorType: 'StringBeginsWith'
    key: 'data.target.repository'
    values: split(repositoryPrefixes, ',')
  }
]

resource topic 'Microsoft.EventGrid/systemTopics@2025-02-15' existing = {
  name: topicName
}

resource imagePushed 'Microsoft.EventGrid/systemTopics/eventSubscriptions@2025-02-15' = {
  parent: topic
  name: 'acr-cleanup-image-pushed'
  properties: {
    // func.EventGridEvent on the Python side; the default for system topics.
    eventDeliverySchema: 'EventGridSchema'
    destination: {
      endpointType: 'AzureFunction'
      properties: {
        resourceId: '${functionAppId}/functions/${functionName}'
        // One event per invocation: one repository per run, retried on its own.
        maxEventsPerBatch: 1
        preferredBatchSizeInKilobytes: 64
      }
    }
    filter: {
      includedEventTypes: includedEventTypes
      advancedFilters: prefixFilters
    }
    retryPolicy: {
      maxDeliveryAttempts: maxDeliveryAttempts
      eventTimeToLiveInMinutes: eventTimeToLiveInMinutes
    }
    // Dead-lettered with the topic's own identity: no storage key or SAS anywhere.
    deadLetterWithResourceIdentity: {
      identity: {
        type: 'SystemAssigned'
      }
      deadLetterDestination: {
        endpointType: 'StorageBlob'
        properties: {
          resourceId: deadLetterStorageAccountId
          blobContainerName: deadLetterContainerName
        }
      }
    }
  }
}

output subscriptionName string = imagePushed.name
