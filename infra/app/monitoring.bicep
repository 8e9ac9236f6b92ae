// Log Analytics workspace and workspace-based Application Insights; both accept Entra ID only.

param logAnalyticsName string
param appInsightsName string
param location string
param tags object
// The retention periods Application Insights accepts (see logRetentionDays in main.bicep).
@allowed([
  30
  60
  90
  120
  180
  270
  365
  550
  730
])
param retentionDays int

resource logAnalytics 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: logAnalyticsName
  location: location
  tags: tags
  properties: {
    sku: {
      name: 'PerGB2018'
    }
    retentionInDays: retentionDays
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
    WorkspaceResourceId: logAnalytics.id
    DisableLocalAuth: true
    RetentionInDays: retentionDays
  }
}

output logAnalyticsId string = logAnalytics.id
output appInsightsName string = appInsights.name
output connectionString string = appInsights.properties.ConnectionString
