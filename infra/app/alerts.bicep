// Watching the watcher: Azure Monitor log search alert rules over Application Insights that report a
// dead or failing app from outside it, an optional action group that notifies a webhook and an
// e-mail address, and a workbook of collection health (README, Platform alerts).
//
// The rules query the telemetry contract of issue 16: the OpenTelemetry instruments of meter `mia`
// land in `customMetrics` (`name` = the instrument, attributes in `customDimensions`); function
// failures come from the Functions host's own `requests` and `exceptions`. The query text is fixed
// here: tests/infra/test_platform_alerts.py checks that it names only instruments of the contract.
//
// The app's webhook URL lives in Key Vault (alert-webhook-url), set after the deployment, so an action
// group cannot read it at deployment time: the URL is given again as the secure parameter webhookUrl.
// Azure Monitor posts its common alert schema there
// (https://learn.microsoft.com/azure/azure-monitor/alerts/alerts-common-schema), not the app's signed
// payload. The rules are always deployed (they show in the portal and the workbook); the action group
// only when a receiver is given.

param location string
param tags object
@description('Makes the rule, action group and workbook names unique in the resource group.')
param resourceToken string
param appInsightsName string

@secure()
@description('HTTPS URL the action group posts the common alert schema to; empty: no webhook receiver.')
param webhookUrl string
@description('E-mail address the action group notifies; empty: no e-mail receiver.')
param email string

@description('Minutes without a successful collection run before "no successful collection" fires.')
param silenceMinutes int
@description('Minutes of telemetry the failure, poison and lag rules look at in each evaluation.')
param windowMinutes int
@description('Failed invocations of one function within the window above which the failure rule fires.')
param failureThreshold int
@description('Messages on a poison queue above which the poison rule fires.')
param poisonThreshold int
@description('Collection lag, in minutes, above which the lag rule fires.')
param lagMinutes int

resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: appInsightsName
}

var notify = !empty(webhookUrl) || !empty(email)
var webhookReceiver = {
  name: 'mia-webhook'
  serviceUri: webhookUrl
  useCommonAlertSchema: true
  useAadAuth: false
}
var emailReceiver = {
  name: 'mia-email'
  emailAddress: email
  useCommonAlertSchema: true
}

// https://learn.microsoft.com/azure/templates/microsoft.insights/actiongroups: groupShortName is at
// most 12 characters; action groups are global resources.
resource actionGroup 'Microsoft.Insights/actionGroups@2023-01-01' = if (notify) {
  name: 'ag-mia-${resourceToken}'
  location: 'Global'
  tags: tags
  properties: {
    groupShortName: 'mia'
    enabled: true
    webhookReceivers: empty(webhookUrl) ? [] : [webhookReceiver]
    emailReceivers: empty(email) ? [] : [emailReceiver]
  }
}

// A counter row in customMetrics is one export interval's increase of one attribute set; the SDK
// exports no row for an interval without increases, so counting rows counts intervals with a success.
// summarize without `by` returns one row even over no input, with count 0: silence is a 0, not an
// empty result.
var noCollectionQuery = '''
customMetrics
| where name == "mia.collection.runs"
| where tostring(customDimensions.outcome) == "success"
| summarize successes = countif(value > 0)
'''

// requests: one row per function invocation written by the Functions host, success false when the
// invocation failed (https://learn.microsoft.com/azure/azure-functions/analyze-telemetry-data).
// A 4xx answer of the report endpoint is the caller's error, not the app's. exceptions without an
// operation are the host's own (startup, listeners, indexing): an app whose functions never start
// writes no request at all.
var functionFailuresQuery = '''
union
    (requests
    | where success == false and not(resultCode startswith "4")
    | project function_name = operation_Name),
    (exceptions
    | where isempty(operation_Name)
    | project function_name = "(host)")
| summarize failures = count() by function_name
'''

// The newest depth of each poison queue, as the app last reported it.
var poisonQueueQuery = '''
customMetrics
| where name == "mia.queue.depth"
| extend queue = tostring(customDimensions.queue)
| where queue endswith "-poison"
| summarize arg_max(timestamp, value) by queue
| project queue, depth = value
'''

// The newest lag of each content type. The instrument may be a gauge (value) or a histogram of the
// value at run end (valueMax is the largest in the interval; value would be their sum).
var lagQuery = '''
customMetrics
| where name == "mia.collection.lag"
| extend content_type = tostring(customDimensions.content_type)
| summarize arg_max(timestamp, valueMax, value) by content_type
| project content_type, lag_seconds = coalesce(valueMax, value)
'''

var rules = [
  {
    name: 'no-collection'
    displayName: 'mia: no successful collection run'
    description: 'fetch_audit recorded no successful collection run (mia.collection.runs, outcome success) in ${silenceMinutes} minutes: the app, its timer or its access to the Management Activity API is down.'
    severity: 1
    windowSize: 'PT${silenceMinutes}M'
    query: noCollectionQuery
    measure: 'successes'
    timeAggregation: 'Total'
    operator: 'LessThan'
    threshold: 1
    dimensions: []
  }
  {
    name: 'function-failures'
    displayName: 'mia: function failures'
    description: 'More than ${failureThreshold} failed invocations of one function, or errors of the Functions host, in ${windowMinutes} minutes (requests and exceptions).'
    severity: 2
    windowSize: 'PT${windowMinutes}M'
    query: functionFailuresQuery
    measure: 'failures'
    timeAggregation: 'Total'
    operator: 'GreaterThan'
    threshold: failureThreshold
    dimensions: [
      {
        name: 'function_name'
        operator: 'Include'
        values: [
          '*'
        ]
      }
    ]
  }
  {
    name: 'poison-queue'
    displayName: 'mia: messages on the poison queue'
    description: 'A poison queue (mia.queue.depth, queue *-poison) holds more than ${poisonThreshold} messages: content blobs that failed processing five times.'
    severity: 2
    windowSize: 'PT${windowMinutes}M'
    query: poisonQueueQuery
    measure: 'depth'
    timeAggregation: 'Maximum'
    operator: 'GreaterThan'
    threshold: poisonThreshold
    dimensions: [
      {
        name: 'queue'
        operator: 'Include'
        values: [
          '*'
        ]
      }
    ]
  }
  {
    name: 'collection-lag'
    displayName: 'mia: collection lag above the threshold'
    description: 'The collection checkpoint of a content type (mia.collection.lag) is more than ${lagMinutes} minutes behind; content older than 7 days can no longer be fetched.'
    severity: 2
    windowSize: 'PT${windowMinutes}M'
    query: lagQuery
    measure: 'lag_seconds'
    timeAggregation: 'Maximum'
    operator: 'GreaterThan'
    threshold: lagMinutes * 60
    dimensions: [
      {
        name: 'content_type'
        operator: 'Include'
        values: [
          '*'
        ]
      }
    ]
  }
]

// https://learn.microsoft.com/azure/templates/microsoft.insights/scheduledqueryrules (2023-12-01, the
// current GA version). No managed identity: Azure Monitor documents one as required for rules that
// query Azure Resource Graph or Azure Data Explorer
// (https://learn.microsoft.com/azure/azure-monitor/logs/azure-monitor-data-explorer-proxy), and these
// query only the component they are scoped to; a rule without one adds no principal and no role.
resource alertRules 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = [
  for rule in rules: {
    name: 'mia-${rule.name}-${resourceToken}'
    location: location
    tags: tags
    kind: 'LogAlert'
    properties: {
      displayName: rule.displayName
      description: rule.description
      severity: rule.severity
      enabled: true
      scopes: [
        appInsights.id
      ]
      evaluationFrequency: 'PT5M'
      windowSize: rule.windowSize
      autoMitigate: true
      // On the first provision the app has sent no telemetry yet, and validation of a query over
      // tables and columns that have no rows can refuse the rule.
      skipQueryValidation: true
      criteria: {
        allOf: [
          {
            query: rule.query
            timeAggregation: rule.timeAggregation
            metricMeasureColumn: rule.measure
            operator: rule.operator
            threshold: rule.threshold
            dimensions: rule.dimensions
            failingPeriods: {
              numberOfEvaluationPeriods: 1
              minFailingPeriodsToAlert: 1
            }
          }
        ]
      }
      actions: {
        actionGroups: notify ? [actionGroup.id] : []
      }
    }
  }
]

// https://learn.microsoft.com/azure/templates/microsoft.insights/workbooks (2023-06-01): the name is a
// GUID, serializedData the workbook's JSON as a string, sourceId the resource its queries run against.
resource workbook 'Microsoft.Insights/workbooks@2023-06-01' = {
  name: guid(resourceGroup().id, appInsightsName, 'mia-collection-health')
  location: location
  tags: tags
  kind: 'shared'
  properties: {
    displayName: 'mia collection health'
    category: 'workbook'
    version: 'Notebook/1.0'
    sourceId: appInsights.id
    serializedData: loadTextContent('workbook.json')
  }
}

output actionGroupId string = notify ? actionGroup.id : ''
output workbookId string = workbook.id
