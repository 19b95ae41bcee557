// Log Analytics + workspace-based Application Insights with local (key) authentication disabled:
// telemetry is accepted only from Entra identities holding Monitoring Metrics Publisher.
param location string
param tags object
param workspaceName string
param appInsightsName string

@description('Principal that sends telemetry (the app\'s user-assigned identity).')
param publisherPrincipalId string

// Built-in role "Monitoring Metrics Publisher" (docs/functions-facts.md 3.2).
var monitoringMetricsPublisher = '3913510d-42f4-4e42-8a64-420c390055eb'

resource workspace 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: workspaceName
  location: location
  tags: tags
  properties: {
    sku: {
      name: 'PerGB2018'
    }
    retentionInDays: 30
    features: {
      disableLocalAuth: true
    }
  }
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' = {
  name: appInsightsName
  location: location
  tags: tags
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: workspace.id
    DisableLocalAuth: true
  }
}

resource publisher 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(appInsights.id, publisherPrincipalId, monitoringMetricsPublisher)
  scope: appInsights
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', monitoringMetricsPublisher)
    principalId: publisherPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// Not a secret: it names the resource and its ingestion endpoint. With DisableLocalAuth the
// instrumentation key in it authorizes nothing; ingestion needs the Entra token.
output connectionString string = appInsights.properties.ConnectionString
output appInsightsName string = appInsights.name
output workspaceName string = workspace.name
