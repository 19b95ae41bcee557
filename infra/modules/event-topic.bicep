// The registry's Event Grid system topic, in the registry's resource group. A registry can have
// only one system topic: when one exists already, pass its name and it is reused, not replaced.
// The topic's system-assigned identity writes dead-lettered events to storage, so a reused topic
// must have one (`az eventgrid system-topic update --identity systemassigned`; docs/deploy.md).
targetScope = 'resourceGroup'

param registryName string
param topicName string
param useExisting bool
param tags object

resource registry 'Microsoft.ContainerRegistry/registries@2023-07-01' existing = {
  name: registryName
}

resource createdTopic 'Microsoft.EventGrid/systemTopics@2025-02-15' = if (!useExisting) {
  name: topicName
  // A system topic lives in its source's region.
  location: registry.location
  tags: tags
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    source: registry.id
    topicType: 'Microsoft.ContainerRegistry.Registries'
  }
}

resource reusedTopic 'Microsoft.EventGrid/systemTopics@2025-02-15' existing = if (useExisting) {
  name: topicName
}

output topicName string = topicName
output principalId string = useExisting ? reusedTopic.identity.principalId : createdTopic.identity.principalId
