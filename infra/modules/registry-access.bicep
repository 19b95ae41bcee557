// Least privilege on the EXISTING registry, deployed into the registry's resource group.
//
// What each role grants (docs/acr-facts.md section 6):
// - RBAC mode ("RBAC Registry Permissions"): AcrPull lists repositories/tags and reads manifests;
//   AcrDelete deletes images and tags and nothing else (it cannot even list). Locks
//   (changeableAttributes) are repository metadata writes, which no Acr* role grants; the only
//   built-ins that do are Contributor/Owner, so a custom role with exactly the two metadata
//   actions is assigned when the policy locks tags.
// - ABAC mode (roleAssignmentMode AbacRepositoryPermissions): AcrPull/AcrPush/AcrDelete are not
//   honoured. Container Registry Repository Contributor reads, writes metadata (locks) and deletes;
//   it does not list the catalog, which the sweep needs: Catalog Lister adds that.
targetScope = 'resourceGroup'

param registryName string

@description('Principal of the function app\'s user-assigned identity.')
param principalId string

param abacMode bool
param tagLocksEnabled bool

// Built-in role definition ids (docs/acr-facts.md section 6; tenant-independent).
var acrPull = '7f951dda-4ed3-4680-a7ca-43fe172d538d'
var acrDelete = 'c2f4ef07-c644-48eb-af81-4b1b4947fb11'
var repositoryContributor = '2efddaa5-3f1f-4df3-97df-af3f13818f4c'
var catalogLister = 'bfdb9389-c9a5-478a-bb2f-ba9ca092c3c7'

var builtInRoles = abacMode ? [
  repositoryContributor
  catalogLister
] : [
  acrPull
  acrDelete
]

var needsMetadataRole = !abacMode && tagLocksEnabled
var metadataRoleId = guid(subscription().id, resourceGroup().id, 'acr-cleanup-repository-metadata')

resource registry 'Microsoft.ContainerRegistry/registries@2023-07-01' existing = {
  name: registryName
}

resource builtInAssignments 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for roleId in builtInRoles: {
  name: guid(registry.id, principalId, roleId)
  scope: registry
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleId)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}]

// Role names are unique per tenant, hence the subscription and group in it.
resource metadataRole 'Microsoft.Authorization/roleDefinitions@2022-04-01' = if (needsMetadataRole) {
  name: metadataRoleId
  properties: {
    roleName: 'ACR cleanup repository metadata (${subscription().subscriptionId}/${resourceGroup().name})'
    description: 'Read and update repository, tag and manifest attributes (locks) of container registries. Nothing else.'
    type: 'CustomRole'
    permissions: [
      {
        actions: [
          'Microsoft.ContainerRegistry/registries/metadata/read'
          'Microsoft.ContainerRegistry/registries/metadata/write'
        ]
        notActions: []
        dataActions: []
        notDataActions: []
      }
    ]
    assignableScopes: [
      resourceGroup().id
    ]
  }
}

resource metadataAssignment 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (needsMetadataRole) {
  name: guid(registry.id, principalId, metadataRoleId)
  scope: registry
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', metadataRoleId)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
  dependsOn: [
    metadataRole
  ]
}

output registryId string = registry.id
// Basic, Standard or Premium: the function app paces each run below this SKU's request-rate limits.
output sku string = registry.sku.name
output loginServer string = registry.properties.loginServer
output location string = registry.location
