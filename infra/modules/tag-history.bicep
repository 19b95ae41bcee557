// The moving-tag history (docs/operations.md, "The moving-tag history"): ONE table in the app's
// storage account, and the app's identity allowed to read and write rows in that table only.
targetScope = 'resourceGroup'

param storageAccountName string
param tableName string

@description('Principal of the function app\'s user-assigned identity.')
param appPrincipalId string

// Built-in role "Storage Table Data Contributor" (docs/functions-facts.md 3.2): read, insert,
// update and delete entities; the app itself never creates or deletes a table.
var storageTableDataContributor = '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'

resource account 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource tableService 'Microsoft.Storage/storageAccounts/tableServices@2023-05-01' = {
  parent: account
  name: 'default'
}

resource historyTable 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' = {
  parent: tableService
  name: tableName
}

resource historyWriter 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(historyTable.id, appPrincipalId, storageTableDataContributor)
  scope: historyTable
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageTableDataContributor)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// What CLEANUP_HISTORY_TABLE_URL holds; the table endpoint ends with '/'.
output tableUrl string = '${account.properties.primaryEndpoints.table}${historyTable.name}'
