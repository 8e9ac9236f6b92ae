// The user-assigned managed identity the function app runs as (storage, Key Vault, telemetry, and
// the Management Activity API / Graph once infra/grant-permissions.sh has run).

param name string
param location string
param tags object

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: name
  location: location
  tags: tags
}

output id string = identity.id
output name string = identity.name
output clientId string = identity.properties.clientId
output principalId string = identity.properties.principalId
